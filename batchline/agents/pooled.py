"""The model a run's requests go through on the fleet: each request joins its model's shared pool and the run ends
suspended, holding no worker; the run resumed from its history reads the request's result from the store.

It wraps the run's own pydantic-ai model, which keeps encoding and decoding (its class, settings and profile make
the body), while batchline's workers send the batches with their own keys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from pydantic_ai.exceptions import ModelAPIError, UserError
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.batch import BatchRequest
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings

from ..errors import BatchInputError
from ..jobs import encode
from ..model_forms import ModelForm, resolve_model
from ..providers import Provider, get_provider
from ..providers.endpoints import untrusted
from ..runtime import Runtime
from .records import Request, ticket_of
from .store import AgentStore

DETAILS_KEY = "batchline"
"""Where a suspended response keeps its ticket, in `provider_details`, which the message history keeps."""


def pending_ticket(message: ModelMessage | None) -> str | None:
    """The ticket a suspended response of batchline's waits on, if `message` is one."""
    if not (isinstance(message, ModelResponse) and message.state == "suspended" and message.provider_details):
        return None
    details = message.provider_details.get(DETAILS_KEY)
    ticket = details.get("ticket") if isinstance(details, dict) else None
    return ticket if isinstance(ticket, str) and message.provider_response_id == f"batchline:{ticket}" else None


@dataclass(frozen=True)
class Place:
    """The run a `PooledModel` serves."""

    job_id: str
    index: int
    step: int
    """How many model requests the run has made: its next one is ticket `step`, the one it waits on `step - 1`."""


class PooledModel(WrapperModel):
    def __init__(self, wrapped: Model, runtime: Runtime, place: Place) -> None:
        super().__init__(wrapped)
        self.runtime = runtime
        self.place = place
        self.agents = AgentStore(runtime.store)
        self.joined: Request | None = None
        """The request this round made, encoded: the round's end saves it into its pool with the run's history."""
        self.form: ModelForm = resolve_model(wrapped)

    def _codec(self) -> Provider:
        codec = get_provider(self.form.model)
        if self.form.instance is not None:
            codec.use_model(self.form.instance)
        return codec

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        last = messages[-1] if messages else None
        if (ticket := pending_ticket(last)) is not None:
            assert isinstance(last, ModelResponse)
            request = BatchRequest(
                custom_id=ticket,
                messages=messages[:-1],
                model_settings=model_settings,
                model_request_parameters=model_request_parameters,
            )
            return self._collect(ticket, last, request)
        return self._join(messages, model_settings, model_request_parameters)

    def _join(
        self, messages: list[ModelMessage], settings: ModelSettings | None, params: ModelRequestParameters
    ) -> ModelResponse:
        if self.joined is not None:  # a second request in one round would go unsaved: never made
            raise RuntimeError("A run's round on the fleet makes one model request.")
        place = self.place
        ticket = ticket_of(place.job_id, place.index, place.step)
        codec = self._codec()
        request = BatchRequest(
            custom_id=ticket, messages=messages, model_settings=settings, model_request_parameters=params
        )
        (encoded,) = encode(codec, [request])
        if codec.request_size(encoded) > codec.max_bytes:  # this run fails, not the batch it would have joined
            raise BatchInputError(
                f"a request of {codec.request_size(encoded):,} bytes is more than a {codec.name} batch holds"
            )
        endpoint = self.form.endpoint
        endpoint_json = endpoint.to_json() if endpoint is not None else ""
        trusted = self.runtime.settings.trusted_base_urls
        if endpoint is not None and (reason := untrusted(codec.name, endpoint.base_url, trusted)):
            raise BatchInputError(reason)
        suffix = f"@{hashlib.sha256(endpoint_json.encode()).hexdigest()[:16]}" if endpoint_json else ""
        self.joined = Request(
            ticket, self.form.model + suffix, encoded.body, self.form.model, endpoint_json, encoded.group
        )
        return ModelResponse(
            parts=[],
            provider_name=self.wrapped.system,
            provider_response_id=f"batchline:{ticket}",
            provider_details={DETAILS_KEY: {"ticket": ticket}},
            state="suspended",
        )

    def _collect(self, ticket: str, pending: ModelResponse, request: BatchRequest) -> ModelResponse:
        place = self.place
        if ticket != ticket_of(place.job_id, place.index, place.step - 1):  # a history made elsewhere, or forged
            raise UserError(f"The run's history waits on request {ticket!r}, which is not this run's.")
        where = self.agents.ticket(ticket)
        if where is None or not where.startswith("done:"):
            return pending  # not answered yet: the run ends suspended again
        batch_job = where.removeprefix("done:")
        (result,) = self.runtime.store.results(batch_job, [ticket])
        if result is None:
            raise ModelAPIError(self.model_name, f"batch job {batch_job} ended without a result for this request")
        if result.status in ("expired", "canceled"):
            verb = "expired" if result.status == "expired" else "was cancelled"
            raise ModelAPIError(self.model_name, f"the batch {verb} before the model ran this request")
        response = self._codec().decode(result, request)
        details: dict[str, Any] = {
            **(response.provider_details or {}),
            DETAILS_KEY: {"batch_job": batch_job, "ticket": ticket},
        }
        response.provider_details = details
        return response

    def continuation_delay(self, response: ModelResponse) -> float | None:
        if pending_ticket(response) is not None:
            return 60.0  # any number: the run ends with `PendingModelResponse` instead of waiting it out
        return self.wrapped.continuation_delay(response)

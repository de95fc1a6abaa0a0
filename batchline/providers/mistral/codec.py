"""The Mistral adapter's codec side: chat completion bodies encoded and results decoded by pydantic-ai's MistralModel.

pydantic-ai has no batch API for Mistral, so this does what `MistralModel.request` does up to the HTTP call: the same
`prepare_request`, message mapping, tool choice and settings, into the mistralai SDK's own `ChatCompletionRequest`,
serialized as the SDK sends it; and decodes a result body as `MistralModel._process_response` reads the SDK's
`ChatCompletionResponse`. An errored result raises the `ModelHTTPError` pydantic-ai raises for that answer live.
These are pydantic-ai's private methods, pinned by pyproject's pydantic-ai minor version and proved by
tests/test_mistral_adapter.py; the mistralai SDK is the `mistral` extra.

Kept apart from the transport: a worker that only uploads, polls and downloads never imports pydantic-ai's models or
the mistralai SDK.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import httpx2
import orjson
from pydantic_ai.exceptions import ModelAPIError, UserError
from pydantic_ai.messages import ModelResponse
from pydantic_ai.models import Model
from pydantic_ai.models.batch import BatchRequest

from ...records import StoredResult
from .._pydantic_codec import PLACEHOLDER_KEY, encode_all, model_of
from ..base import Encoded

if TYPE_CHECKING:
    from pydantic_ai.models.mistral import MistralModel

_NOT_BATCHED = ("timeout", "extra_headers", "extra_body")
"""Settings a batch job cannot honour per request: refused before anything is stored."""


def _mistral() -> Any:
    try:
        from pydantic_ai.models import mistral
    except ImportError as error:  # the SDK is an extra: name it
        raise UserError("mistral: models need the mistralai SDK; install batchline[mistral].") from error
    return mistral


@functools.lru_cache(maxsize=64)
def codec_model(name: str) -> MistralModel:
    """pydantic-ai's model for encoding and decoding `name`; the fixed base URL keeps encoding the same everywhere."""
    from pydantic_ai.providers.mistral import MistralProvider

    mistral = _mistral()
    return cast("MistralModel", mistral.MistralModel(name, provider=MistralProvider(api_key=PLACEHOLDER_KEY)))


def encode_many(default: str, requests: Sequence[BatchRequest], model: Model | None = None) -> list[Encoded]:
    """Chat completion bodies for `requests`, each grouped by its model (`default` unless it names its own)."""
    if model is not None:
        raise UserError("The mistral adapter encodes with model strings ('mistral:<name>'), not a Model instance.")

    async def encode(request: BatchRequest) -> Encoded:
        name = model_of("mistral", default, request)
        return Encoded(request.custom_id, await encode_body(codec_model(name), request), group=name)

    return encode_all(requests, encode)


async def encode_body(model: MistralModel, request: BatchRequest) -> bytes:
    """The `/v1/chat/completions` body `MistralModel.request` would send for `request`, without its `model` (the
    job names it)."""
    from mistralai.client import models, utils
    from mistralai.client.types import UNSET

    settings, params = model.prepare_request(request.model_settings, request.model_request_parameters)
    given = cast("dict[str, Any]", dict(settings or {}))
    if refused := [key for key in _NOT_BATCHED if given.get(key) is not None]:
        raise UserError(f"request {request.custom_id!r}: Mistral batch jobs take no per-request {', '.join(refused)}.")
    tools, tool_choice = model._get_tool_choice(params, given)  # type: ignore[arg-type]
    body = models.ChatCompletionRequest(
        model=model.model_name,
        messages=await model._map_messages(request.messages, params),
        n=1,
        tools=cast("Any", tools) if tools else UNSET,
        tool_choice=tool_choice,
        stream=False,
        max_tokens=given.get("max_tokens", UNSET),
        temperature=given.get("temperature", UNSET),
        top_p=given.get("top_p", 1),
        random_seed=given.get("seed", UNSET),
        presence_penalty=given.get("presence_penalty"),
        frequency_penalty=given.get("frequency_penalty"),
        stop=given.get("stop_sequences", None),
        reasoning_effort=model._translate_thinking(params),
        parallel_tool_calls=given.get("parallel_tool_calls"),
        prompt_cache_key=given.get("mistral_prompt_cache_key", UNSET),
    )
    data = orjson.loads(utils.marshal_json(body, models.ChatCompletionRequest))  # type: ignore[no-untyped-call]  # as the SDK sends it
    data.pop("model", None)
    data.pop("stream", None)
    return orjson.dumps(data)


def decode(default: str, result: StoredResult, request: BatchRequest, model: Model | None = None) -> ModelResponse:
    """The `ModelResponse` pydantic-ai's MistralModel makes of a stored result; the error it raises for an errored
    one; pydantic-ai's batch error for a request the job never ran."""
    name = model_of("mistral", default, request)
    decoder = codec_model(name)
    if result.status == "succeeded":
        from mistralai.client.models import ChatCompletionResponse

        response = decoder._process_response(ChatCompletionResponse.model_validate_json(result.body))
        response.provider_details = {**(response.provider_details or {}), "processing": "batch"}  # batch prices
        return response
    if result.status == "errored":
        raise _status_error(name, result.body)
    if result.status == "canceled":
        raise ModelAPIError(name, "The batch was canceled before the model ran the request.")
    raise ModelAPIError(name, f"The batch request was {result.status} before the model ran it.")


def _status_error(name: str, stored: bytes) -> Exception:
    """The error pydantic-ai's MistralModel raises for this HTTP answer (status and body), made by its own mapping."""
    from mistralai.client.errors import SDKError

    try:
        value = orjson.loads(stored)
    except orjson.JSONDecodeError:
        value = {}
    code = value.get("status_code") if isinstance(value, dict) else None
    body = value.get("body") if isinstance(value, dict) else None
    status = code if isinstance(code, int) and code >= 400 else 500
    text = orjson.dumps(body).decode() if body is not None else ""
    answer = httpx2.Response(status, content=text.encode(), headers={"content-type": "application/json"})
    error: Exception = _mistral()._map_status_error(SDKError("API error occurred", answer, text), name)
    return error

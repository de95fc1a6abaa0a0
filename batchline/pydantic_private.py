"""Every private name of pydantic-ai that batchline uses, in one place and behind one guard.

They may move in any release (pyproject pins the minor version the tests prove); when one is gone, batchline warns
once, naming it, and takes pydantic-ai's public path or a plain fallback with the documented behaviour: slower or
plainer, never wrong, never an ImportError.

The fast OpenAI decoder (openai/fastdecode.py) builds the `ModelResponse` pydantic-ai's `batch_decode` would, with
pydantic-ai's own private helpers and model attributes. Those may move in any release (pyproject pins the minor
version the differential tests prove). When one is gone, the fast path switches off, with one warning that names it,
and every result is decoded by pydantic-ai's public `batch_decode`: slower, never wrong, never an ImportError.

Only Chat Completions results (raw mode, recorded files) have no public decoder: without `_process_response` they
fail with a clear `UserError` rather than at import.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic_ai.exceptions import ModelAPIError, UserError

if TYPE_CHECKING:
    from pydantic_ai.messages import FinishReason, ModelMessage, ModelResponse
    from pydantic_ai.models import Model
    from pydantic_ai.models.batch import BatchRequest
    from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel


@dataclass(frozen=True, slots=True)
class Helpers:
    """pydantic-ai's private helpers the fast decoder calls, as found in the installed version."""

    now_utc: Callable[[], datetime]
    number_to_datetime: Callable[[int | float], datetime]
    map_responses_citations: Callable[..., Any]
    finish_reasons: Mapping[Any, FinishReason]
    response_status_to_state: Callable[..., Any]
    response_tool_call_id: Callable[[str, str | None], str]
    base_provider_details: object
    """`OpenAIResponsesModel._process_provider_details`: a subclass that overrides it adds its own details."""


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What `_process_response` reads off a Responses model for every response."""

    provider_name: str
    provider_url: str
    canonical_system: Any


class _Guard:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.helpers: Helpers | None = None
        self.missing: str | None = None
        """Why the fast path is off (the name that is missing), once it is."""


_guard = _Guard()


def helpers() -> Helpers | None:
    """The private helpers, imported on first use; None (after one warning) when one of them is missing."""
    if _guard.helpers is not None or _guard.missing is not None:
        return _guard.helpers
    with _guard.lock:
        if _guard.helpers is None and _guard.missing is None:
            try:
                _guard.helpers = _load()
            except (ImportError, AttributeError) as error:
                switch_off(str(error))
    return _guard.helpers


def _load() -> Helpers:
    from pydantic_ai._utils import now_utc, number_to_datetime
    from pydantic_ai.models.openai import OpenAIResponsesModel
    from pydantic_ai.models.openai._citations import map_responses_citations
    from pydantic_ai.models.openai._response_fields import (
        RESPONSES_FINISH_REASON_MAP,
        response_status_to_state,
        response_tool_call_id,
    )

    return Helpers(
        now_utc=now_utc,
        number_to_datetime=number_to_datetime,
        map_responses_citations=map_responses_citations,
        finish_reasons=RESPONSES_FINISH_REASON_MAP,
        response_status_to_state=response_status_to_state,
        response_tool_call_id=response_tool_call_id,
        base_provider_details=OpenAIResponsesModel._process_provider_details,
    )


def switch_off(missing: str) -> None:
    """Turn the fast path off for this process, warning once."""
    if _guard.missing is not None:
        return
    _guard.missing = missing
    _guard.helpers = None
    warnings.warn(
        f"batchline: pydantic-ai no longer has a private name its fast OpenAI decoder uses ({missing}); OpenAI "
        "results are decoded by pydantic-ai's public batch_decode instead, which is slower. Install the "
        "pydantic-ai-slim version batchline pins to get the fast path back.",
        RuntimeWarning,
        stacklevel=3,
    )


def fast_path_missing() -> str | None:
    """The private name whose absence switched the fast path off, or None while it is on."""
    return _guard.missing


def reset() -> None:
    """Forget what was found (tests make a name go missing, then bring it back)."""
    with _guard.lock:
        _guard.helpers = None
        _guard.missing = None


def model_facts(model: OpenAIResponsesModel) -> ModelFacts | None:
    """The provider's name and base URL and the canonical system stamp, read as `_process_response` reads them; None
    (the fast path off) when the model no longer has them."""
    try:
        provider = model._provider
        return ModelFacts(provider.name, provider.base_url, model._canonical_system_stamp)
    except AttributeError as error:
        switch_off(f"OpenAIResponsesModel: {error}")
        return None


def adds_provider_details(model: OpenAIResponsesModel, found: Helpers) -> bool:
    """Whether `model` is of a subclass that adds its own provider details (the fast path does not know them)."""
    return getattr(type(model), "_process_provider_details", None) is not found.base_provider_details


def chat_completion_response(model: OpenAIChatModel, completion: Any) -> ModelResponse:
    """The `ModelResponse` pydantic-ai's chat model makes of a Chat Completion (it has no public decoder for one)."""
    process: Callable[[Any], ModelResponse] | None = getattr(model, "_process_response", None)
    if process is None:
        raise UserError(
            "This pydantic-ai version cannot turn a Chat Completions result into a ModelResponse (its chat model has "
            "no `_process_response`); export the results with `batchline results` or batch_export_sync."
        )
    return process(completion)


# -- batchline.model_forms: what a Model instance says of itself ------------------------------------------------------
def no_batch_api_message(model: Model) -> str:
    """pydantic-ai's own words for why `model` cannot batch (its Vertex AI and Azure reasons), or plain ones."""
    message = getattr(model, "_no_batch_api_message", None)
    return str(message()) if callable(message) else f"`{type(model).__name__}` has no batch API."


def sdk_custom_headers(client: object) -> Mapping[str, object]:
    """The headers an SDK client (openai, anthropic) was made with (`default_headers`), which it keeps privately."""
    headers = getattr(client, "_custom_headers", None)
    return headers if isinstance(headers, Mapping) else {}


# -- batchline.direct: model_request_batch's own checks, defaults and request preparation -----------------------------
try:
    from pydantic_ai.models._batch_settings import (
        DEFAULT_MAX_POLL_INTERVAL as DEFAULT_MAX_POLL_INTERVAL,
    )
    from pydantic_ai.models._batch_settings import (
        DEFAULT_MAX_RESUBMISSIONS as DEFAULT_MAX_RESUBMISSIONS,
    )
    from pydantic_ai.models._batch_settings import (
        DEFAULT_POLL_INTERVAL as DEFAULT_POLL_INTERVAL,
    )
except ImportError:  # pragma: no cover - the documented defaults
    DEFAULT_MAX_RESUBMISSIONS = 2
    DEFAULT_POLL_INTERVAL = timedelta(seconds=30)
    DEFAULT_MAX_POLL_INTERVAL = timedelta(minutes=10)


def _private(module: str, name: str) -> Callable[..., Any] | None:
    try:
        found: Callable[..., Any] = getattr(__import__(module, fromlist=[name]), name)
    except (ImportError, AttributeError):
        warnings.warn(f"batchline.direct: pydantic-ai has no {module}.{name}; a plain fallback runs", stacklevel=3)
        return None
    return found


@functools.cache
def _direct_helper(module: str, name: str) -> Callable[..., Any] | None:
    """One of `pydantic_ai.direct.model_request_batch`'s private helpers, looked up on first use."""
    return _private(module, name)


def check_batch_settings(
    model: Model,
    *,
    max_requests: int | None,
    max_resubmissions: int,
    poll_interval: timedelta,
    max_poll_interval: timedelta,
) -> int:
    """pydantic-ai's checks of `model_request_batch`'s arguments; the most requests per batch."""
    check = _direct_helper("pydantic_ai.models._batch_settings", "check_batch_settings")
    if check is not None:
        size: int = check(
            model,
            max_requests=max_requests,
            max_resubmissions=max_resubmissions,
            poll_interval=poll_interval,
            max_poll_interval=max_poll_interval,
        )
        return size
    if max_requests is not None and max_requests <= 0:
        raise UserError("`max_requests` must be positive.")
    if max_resubmissions < 0:
        raise UserError("`max_resubmissions` must not be negative.")
    if poll_interval <= timedelta(0) or max_poll_interval < poll_interval:
        raise UserError("`poll_interval` must be positive and no longer than `max_poll_interval`.")
    limit = model.batch_max_requests
    if limit is None:
        raise UserError(f"`{type(model).__name__}` {model.model_name!r} has no batch API.")
    return limit if max_requests is None else min(max_requests, limit)


def refuse_pending(messages: Sequence[ModelMessage]) -> None:
    """pydantic-ai's refusal of a request whose last message awaits tool results it cannot batch."""
    pending = _direct_helper("pydantic_ai.models._batch_model", "refuse_pending_batch_request")
    if pending is not None:
        pending(messages)


def prepare(model: Model, request: BatchRequest) -> BatchRequest:
    """The request as `model_request_batch` sends it: special tokens broken, instruction parts filled in."""
    messages = list(request.messages)
    special_tokens = _direct_helper("pydantic_ai.direct", "_break_special_tokens")
    if special_tokens is not None:
        messages = special_tokens(model, messages)
    params = request.model_request_parameters
    instruction_parts = _direct_helper("pydantic_ai.direct", "_ensure_instruction_parts")
    if instruction_parts is not None:
        params = instruction_parts(request.messages, params)
    return dataclasses.replace(request, messages=messages, model_request_parameters=params)


def missing_result_error(model_name: str, batch_id: str) -> ModelAPIError:
    return ModelAPIError(model_name, f"Batch {batch_id!r} ended without a result for the request.")


# -- batchline.providers.openai_compat: the Chat Completions body of pydantic-ai's chat model -------------------------
async def chat_completions_create(
    model: OpenAIChatModel, messages: list[ModelMessage], settings: dict[str, Any], parameters: Any
) -> None:
    """Have `model` send its Chat Completions request for prepared `settings` and `parameters` (its client keeps the
    body). Without `_completions_create`, pydantic-ai's public `request` sends the same body, preparing it again."""
    create: Callable[..., Any] | None = getattr(model, "_completions_create", None)
    if create is None:
        _warn_chat_fallback()
        await model.request(messages, settings, parameters)  # type: ignore[arg-type]
        return
    await create(messages, False, settings, parameters)


@functools.cache
def _warn_chat_fallback() -> None:
    warnings.warn(
        "batchline: pydantic-ai's OpenAIChatModel has no _completions_create; Groq, Together and Azure requests are "
        "encoded through its public request() instead",
        RuntimeWarning,
        stacklevel=3,
    )

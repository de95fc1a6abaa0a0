"""Every private name of pydantic-ai that batchline uses, in one place and behind one guard.

The fast OpenAI decoder (openai/fastdecode.py) builds the `ModelResponse` pydantic-ai's `batch_decode` would, with
pydantic-ai's own private helpers and model attributes. Those may move in any release (pyproject pins the minor
version the differential tests prove). When one is gone, the fast path switches off, with one warning that names it,
and every result is decoded by pydantic-ai's public `batch_decode`: slower, never wrong, never an ImportError.

Only Chat Completions results (raw mode, recorded files) have no public decoder: without `_process_response` they
fail with a clear `UserError` rather than at import.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic_ai.exceptions import UserError

if TYPE_CHECKING:
    from pydantic_ai.messages import FinishReason, ModelResponse
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

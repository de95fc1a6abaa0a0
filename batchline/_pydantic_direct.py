"""pydantic-ai's private batch helpers that `batchline.direct` reuses, so its checks, defaults and request preparation
are `pydantic_ai.direct.model_request_batch`'s own, behind one guard.

They may move in any release (pyproject pins the minor version the tests prove). When one is gone, a plain fallback
with the same documented behaviour takes its place: the defaults, the argument checks and the errors stay what
pydantic-ai documents; only the message-preparation steps (special tokens, instruction parts) are skipped, with one
warning naming what is missing.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from pydantic_ai.exceptions import ModelAPIError, UserError
from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import Model
from pydantic_ai.models.batch import BatchRequest

try:
    from pydantic_ai.models._batch_settings import (
        DEFAULT_MAX_POLL_INTERVAL,
        DEFAULT_MAX_RESUBMISSIONS,
        DEFAULT_POLL_INTERVAL,
    )
except ImportError:  # pragma: no cover - the documented defaults
    DEFAULT_MAX_RESUBMISSIONS = 2
    DEFAULT_POLL_INTERVAL = timedelta(seconds=30)
    DEFAULT_MAX_POLL_INTERVAL = timedelta(minutes=10)

__all__ = [
    "DEFAULT_MAX_POLL_INTERVAL",
    "DEFAULT_MAX_RESUBMISSIONS",
    "DEFAULT_POLL_INTERVAL",
    "check_batch_settings",
    "missing_result_error",
    "prepare",
    "refuse_pending",
]


def _private(module: str, name: str) -> Callable[..., Any] | None:
    try:
        found: Callable[..., Any] = getattr(__import__(module, fromlist=[name]), name)
    except (ImportError, AttributeError):
        warnings.warn(f"batchline.direct: pydantic-ai has no {module}.{name}; a plain fallback runs", stacklevel=3)
        return None
    return found


_check = _private("pydantic_ai.models._batch_settings", "check_batch_settings")
_pending = _private("pydantic_ai.models._batch_model", "refuse_pending_batch_request")
_special_tokens = _private("pydantic_ai.direct", "_break_special_tokens")
_instruction_parts = _private("pydantic_ai.direct", "_ensure_instruction_parts")


def check_batch_settings(
    model: Model,
    *,
    max_requests: int | None,
    max_resubmissions: int,
    poll_interval: timedelta,
    max_poll_interval: timedelta,
) -> int:
    """pydantic-ai's checks of `model_request_batch`'s arguments; the most requests per batch."""
    if _check is not None:
        size: int = _check(
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
    if _pending is not None:
        _pending(messages)


def prepare(model: Model, request: BatchRequest) -> BatchRequest:
    """The request as `model_request_batch` sends it: special tokens broken, instruction parts filled in."""
    messages = list(request.messages)
    if _special_tokens is not None:
        messages = _special_tokens(model, messages)
    params = request.model_request_parameters
    if _instruction_parts is not None:
        params = _instruction_parts(request.messages, params)
    return dataclasses.replace(request, messages=messages, model_request_parameters=params)


def missing_result_error(model_name: str, batch_id: str) -> ModelAPIError:
    return ModelAPIError(model_name, f"Batch {batch_id!r} ended without a result for the request.")

"""`pydantic_ai.direct`, with `model_request_batch` run on batchline's workers: a one-line switch.

    from batchline.direct import model_request_batch  # was: from pydantic_ai.direct import model_request_batch

`model_request_batch` takes the same arguments, with the same defaults, checks and errors, and returns the same list
of `ModelResponse`s and `ModelAPIError`s in request order; the batches are created, polled and read by batchline's
workers (with the keys in their environment), so the caller holds no connection while they run and any process can
look the job up (`batchline.batch_status`). Everything else (`model_request`, `model_request_sync`, the streams) is
pydantic-ai's own, re-exported unchanged, as is any other name of `pydantic_ai.direct`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pydantic_ai.direct as _pydantic_direct
from pydantic_ai.direct import (
    StreamedResponseSync,
    model_request,
    model_request_stream,
    model_request_stream_sync,
    model_request_sync,
)
from pydantic_ai.exceptions import ModelAPIError, UserError
from pydantic_ai.messages import ModelResponse
from pydantic_ai.models import KnownModelName, Model
from pydantic_ai.models.batch import BatchRequest
from pydantic_ai.settings import merge_model_settings

from . import api
from .caller import caller_runtime
from .jobs import JobLimits, JobOptions
from .model_forms import resolve_model
from .pipeline.base import NOT_FOUND, UNREADABLE
from .providers import get_provider
from .providers.base import LazyCodec
from .pydantic_private import (
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_MAX_RESUBMISSIONS,
    DEFAULT_POLL_INTERVAL,
    check_batch_settings,
    missing_result_error,
    prepare,
    refuse_pending,
)
from .validation import JobNumbers, check_model

__all__ = (
    "StreamedResponseSync",
    "model_request",
    "model_request_batch",
    "model_request_stream",
    "model_request_stream_sync",
    "model_request_sync",
)

JOB_ERRORS = frozenset({"rejected", "unknown", NOT_FOUND, UNREADABLE})
"""A part's provider status when creating, checking on or reading its batch failed: pydantic-ai raises those from the
call, where a request's own error is returned in its place."""


async def model_request_batch(
    model: Model | KnownModelName | str,
    requests: Sequence[BatchRequest],
    *,
    max_requests: int | None = None,
    max_resubmissions: int = DEFAULT_MAX_RESUBMISSIONS,
    poll_interval: timedelta = DEFAULT_POLL_INTERVAL,
    max_poll_interval: timedelta = DEFAULT_MAX_POLL_INTERVAL,
) -> list[ModelResponse | ModelAPIError]:
    """Send requests through the model's batch API on batchline's workers, and wait for their responses.

    As `pydantic_ai.direct.model_request_batch`: one item per request, in the same order, its `ModelResponse` or the
    `ModelAPIError` it failed with. Requests that expired or met a transient error are submitted again, up to
    `max_resubmissions` times; `max_requests` caps the requests per provider batch and `max_poll_interval` the wait
    between checks (the workers' own cap, `BATCHLINE_MAX_POLL_INTERVAL`, also holds). A request's `request_timeout`
    setting raises `UserError`. An error creating, checking on or reading a batch is raised from the call, after the
    batches that have not ended are cancelled; cancelling the call cancels them too.

    A model string is read as pydantic-ai reads it (`openai:` and `openai-responses:` are the Responses API,
    `anthropic:` Message Batches, `google:` the Gemini API); a form batchline cannot batch raises `UserError` (also a
    `NotImplementedError`) naming it. A `Model` instance encodes the requests itself, and its base URL travels with
    the job; the workers use their own key for it, and only for a base URL they trust (`BATCHLINE_TRUSTED_BASE_URLS`).
    """
    form = resolve_model(model, direct=True)
    codec = get_provider(check_model(form.model))
    if not isinstance(codec, LazyCodec):
        raise UserError(f"batchline.direct cannot batch {form.model!r}: it runs pydantic-ai models only.")
    if form.instance is not None:
        codec.use_model(form.instance)
    pydantic_model = codec.pydantic_model()
    batch_size = check_batch_settings(
        pydantic_model,
        max_requests=max_requests,
        max_resubmissions=max_resubmissions,
        poll_interval=poll_interval,
        max_poll_interval=max_poll_interval,
    )
    if len({request.custom_id for request in requests}) != len(requests):
        raise UserError("Each batch request needs a unique `custom_id`.")
    for request in requests:
        refuse_pending(request.messages)
    if any(
        "request_timeout" in (merge_model_settings(pydantic_model.settings, request.model_settings) or {})
        for request in requests
    ):
        raise UserError(
            "`model_request_batch` does not support `request_timeout`: a batch can take up to a day to finish. "
            "To stop waiting, cancel the call, which cancels its batches."
        )
    if not requests:
        return []
    prepared = [prepare(pydantic_model, request) for request in requests]
    # pydantic-ai's own checks above decide what is accepted: no narrower ranges of batchline's.
    numbers = JobNumbers(poll_interval.total_seconds(), None, 500, max_resubmissions, 0.0)
    limits = JobLimits(max_requests=batch_size, max_poll_interval=max_poll_interval.total_seconds())
    batch = await api.created(functools.partial(api.create_job, form, prepared, numbers, JobOptions(), limits))
    try:
        await _wait(pydantic_model.model_name, batch.id)
    except BaseException:
        # Cancelled by the caller, or a batch could not be created, checked or read: stop what has not ended.
        await api.cancel_quietly(batch.id)
        raise
    return await asyncio.to_thread(_outcomes, codec, pydantic_model.model_name, batch.id, prepared)


async def _wait(model_name: str, job_id: str) -> None:
    """Wait until the job is complete; raise the first failure to create, check on or read one of its batches."""
    delay = 0.01
    while True:
        state = await api.batch_status(job_id)
        for part in state.provider_batches:
            if part.status in JOB_ERRORS:
                message = part.error or f"Batch {part.part} of job {job_id} failed ({part.status})."
                raise ModelAPIError(model_name, message)
        if state.is_complete:
            return
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def _outcomes(
    codec: LazyCodec, model_name: str, job_id: str, requests: list[BatchRequest]
) -> list[ModelResponse | ModelAPIError]:
    """Each request's response, decoded as pydantic-ai decodes it, or the `ModelAPIError` it failed with."""
    _, runtime = caller_runtime()
    stored = runtime.store.results(job_id, [request.custom_id for request in requests])
    out: list[ModelResponse | ModelAPIError] = []
    for request, result in zip(requests, stored, strict=True):
        if result is None:
            out.append(missing_result_error(model_name, job_id))
            continue
        try:
            out.append(codec.decode(result, request))
        except ModelAPIError as error:
            out.append(error)
    return out


def __getattr__(name: str) -> Any:
    """Any other name of `pydantic_ai.direct`, so `from batchline.direct import X` works wherever pydantic-ai's does."""
    try:
        return getattr(_pydantic_direct, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None

"""The caller's side: the `batch_create` span the job's trace starts with, and its traceparent kept in the job record
(the sweep re-sends a lost step with it: such a message has no headers of the caller's)."""

from __future__ import annotations

import contextvars
import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from . import attributes as attr
from .celery import instrument_celery
from .instruments import instruments

if TYPE_CHECKING:
    from pydantic_ai.models.batch import BatchRequest
    from pydantic_ai.models.instrumented import InstrumentationSettings

    from ..records import JobRecord

P = ParamSpec("P")
R = TypeVar("R")

SCOPE = "batchline"

_include_content: contextvars.ContextVar[bool | None] = contextvars.ContextVar("batchline_trace", default=None)
"""Inside a traced create: whether its span may carry the prompts. None: not traced."""


def instrument_enabled(instrument: bool | InstrumentationSettings | None, default: Callable[[], bool]) -> bool:
    if instrument is None:
        return default()
    return instrument is not False


def traced_create(default: Callable[[], bool]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run a create function inside a `batch_create` span when its `instrument` keyword (or, when None, `default()`,
    the process's `BATCHLINE_INSTRUMENT`) asks for it. `instrument=True` keeps the prompts out of the span; an
    `InstrumentationSettings` gives its tracer and meter, and its `include_content` decides."""

    def decorate(create: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(create)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            instrument: Any = kwargs.get("instrument")
            if not instrument_enabled(instrument, default):
                return create(*args, **kwargs)
            return _traced(create, instrument, args, kwargs)

        return run

    return decorate


def _traced(create: Callable[..., R], instrument: Any, args: Any, kwargs: Any) -> R:
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    settings = None if isinstance(instrument, bool) or instrument is None else instrument
    tracer = settings.tracer if settings is not None else trace.get_tracer(SCOPE)
    instrument_celery()  # the submit message carries this span's context in its headers
    token = _include_content.set(bool(settings is not None and settings.include_content))
    try:
        with tracer.start_as_current_span(
            "batch_create",
            kind=trace.SpanKind.CLIENT,
            attributes={attr.OPERATION: "chat", attr.STEP: "create"},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                batch = create(*args, **kwargs)
            except BaseException as error:
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                raise
            job_id = getattr(batch, "id", None)
            if isinstance(job_id, str):
                span.set_attribute(attr.JOB_ID, job_id)
            return batch
    finally:
        _include_content.reset(token)


def stamp(record: JobRecord, requests: Sequence[BatchRequest]) -> JobRecord:
    """Inside a traced create: describe the job on its span, count it, and keep the trace's `traceparent` in its
    record. Outside one: `record` as it is."""
    include_content = _include_content.get()
    if include_content is None:
        return record
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    labels = attr.model_attributes(record.model)
    span = trace.get_current_span()
    span.set_attributes({**labels, attr.REQUESTS: record.total})
    span.update_name(f"batch_create {labels.get(attr.MODEL, record.model)}")
    if include_content:
        _add_prompts(span, requests)
    instruments().jobs_created.add(1, labels)
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    traceparent = carrier.get("traceparent")
    return dataclasses.replace(record, traceparent=traceparent) if traceparent else record


def _add_prompts(span: Any, requests: Sequence[BatchRequest]) -> None:
    """One `gen_ai.request` event per request with its messages, as pydantic-ai's `gen_ai.input.messages` JSON."""
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    for request in requests:
        messages = getattr(request, "messages", None)
        if not messages:  # a raw request: the provider's own body, left out
            continue
        text = ModelMessagesTypeAdapter.dump_json(messages).decode()
        span.add_event("gen_ai.request", {"batchline.custom_id": request.custom_id, "gen_ai.input.messages": text})

"""The worker's side: a span per pipeline step inside Celery's task span, the step's outcome on it, and the metrics.

Every function here first checks `BATCHLINE_INSTRUMENT` (the runtime's settings): with it off they cost one
attribute read."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ..costs import cost_of
from . import attributes as attr
from .instruments import instruments
from .usage import Tally

if TYPE_CHECKING:
    from ..records import JobRecord
    from ..runtime import Runtime

SCOPE = "batchline"

S = TypeVar("S", bound=Mapping[str, Any])

# Exceptions that end a step's run normally as far as the job goes: the message comes back (a retry, a requeue).
_AGAIN = ("Retry", "Reject")


@contextlib.contextmanager
def step(
    runtime: Runtime, name: str, job_id: str | None = None, part: int | None = None, run: int | None = None
) -> Iterator[None]:
    """A `batchline.<name>` span around a task's work, with the job's GenAI attributes. No exception text goes on
    it (a provider's error may quote a request): an error sets the span's status to the exception's type."""
    if not runtime.settings.instrument:
        yield
        return
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    values: dict[str, Any] = {attr.STEP: name}
    job = runtime.store.job(job_id) if job_id is not None else None
    if job_id is not None:
        values.update(attr.job_attributes(job_id, job))
    if part is not None:
        values[attr.PART] = part
    if run is not None:
        values[attr.RUN] = run  # an agent job's run, by its input's index
    parent, links = _job_parent(job.traceparent if job is not None else None)
    tracer = trace.get_tracer(SCOPE)
    with tracer.start_as_current_span(
        f"batchline.{name}",
        context=parent,
        links=links,
        attributes=values,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield
        except BaseException as error:
            kind = type(error).__name__
            if kind in _AGAIN:
                span.set_attribute("batchline.again", kind.lower())
            else:
                span.set_status(Status(StatusCode.ERROR, kind))
            raise


def _job_parent(traceparent: str | None) -> tuple[Any, list[Any]]:
    """The parent of a step's span: the current one (Celery's task span, carrying the context its message brought),
    unless that is in another trace than the job's: a message sent where no tracer was set up carries no context, and
    its task span starts a trace of its own. The step then joins the job's trace, linked to that task span."""
    if not traceparent:
        return None, []
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    job_context = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    job_trace = trace.get_current_span(job_context).get_span_context()
    current = trace.get_current_span().get_span_context()
    if not job_trace.is_valid or current.trace_id == job_trace.trace_id:
        return None, []
    return job_context, [trace.Link(current)] if current.is_valid else []


def summarised(runtime: Runtime, summary: S) -> S:
    """`summary` (a job's counts, as the tasks return it), also put on the current step's span."""
    if runtime.settings.instrument:
        from opentelemetry import trace

        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(
                {
                    attr.STATUS: summary["status"],
                    attr.SUCCEEDED: summary["succeeded"],
                    attr.FAILED: summary["failed"],
                    attr.ANOMALIES: summary["anomalies"],
                }
            )
    return summary


@contextlib.contextmanager
def job_context(runtime: Runtime, job_id: str) -> Iterator[None]:
    """Make the job's trace (its caller's W3C `traceparent`, kept in its record) current while sending one of its
    steps, so a message the sweep re-sends carries the job's trace, not the sweep's."""
    job = runtime.store.job(job_id) if runtime.settings.instrument else None
    traceparent = job.traceparent if job is not None else None
    if not traceparent:
        yield
        return
    from opentelemetry import context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    token = context.attach(TraceContextTextMapPropagator().extract({"traceparent": traceparent}))
    try:
        yield
    finally:
        context.detach(token)


@contextlib.contextmanager
def no_trace(runtime: Runtime) -> Iterator[None]:
    """Send a message that belongs to no job's trace: a tick of the due set serves every job, and each part's poll
    span joins its own job's trace (linked to the tick's task span)."""
    if not runtime.settings.instrument:
        yield
        return
    from opentelemetry import context

    token = context.attach(context.Context())
    try:
        yield
    finally:
        context.detach(token)


def record_part(runtime: Runtime, model: str, state: str, provider_state: str = "") -> None:
    """A part entered `state` (submitted, ended, stored)."""
    if runtime.settings.instrument:
        labels = {**attr.model_attributes(model), attr.PART_STATE: state}
        if provider_state:
            labels[attr.PROVIDER_STATE] = provider_state
        instruments().parts.add(1, labels)


def record_poll(runtime: Runtime, model: str) -> None:
    if runtime.settings.instrument:
        instruments().polls.add(1, attr.model_attributes(model))


def record_fetch(runtime: Runtime, job: JobRecord, tally: Tally | None) -> None:
    """A part's results are stored: their count, token usage and batch-priced cost on the fetch span, and in the
    metrics. A model genai-prices does not know gets no cost attribute."""
    if tally is None or not runtime.settings.instrument:
        return
    from opentelemetry import trace

    labels = attr.model_attributes(job.model)
    instruments().results.add(tally.results, labels)
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attribute(attr.RESULTS, tally.results)
    if tally.reader is None:
        return
    span.set_attribute(attr.INPUT_TOKENS, tally.input_tokens)
    span.set_attribute(attr.OUTPUT_TOKENS, tally.output_tokens)
    cost = cost_of(labels.get(attr.SYSTEM, ""), labels.get(attr.MODEL, ""), tally.pairs)
    if cost is not None:
        span.set_attribute(attr.COST, float(cost))


def record_job_done(runtime: Runtime, job: JobRecord, outcome: str) -> None:
    """The job ended: how long it took from its creation."""
    if runtime.settings.instrument:
        labels = {**attr.model_attributes(job.model), attr.STATUS: outcome}
        instruments().job_duration.record(max(0.0, time.time() - job.created_at), labels)


def tally_for(runtime: Runtime, provider_name: str) -> Tally | None:
    """A usage tally for a fetch, or None with instrumentation off."""
    if not runtime.settings.instrument:
        return None
    from ..costs import usage_reader

    return Tally(usage_reader(provider_name))

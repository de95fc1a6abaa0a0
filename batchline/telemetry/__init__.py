"""OpenTelemetry for batchline: one trace per job, from the caller's `batch_create` span through every worker step to
the application's callback task, with GenAI semantic-convention attributes and a few metrics.

Off unless asked for (`instrument=` on the API, `BATCHLINE_INSTRUMENT` for workers), and then nothing here runs:
every entry point checks its switch first. Spans and metrics go through the OpenTelemetry API (a dependency of
pydantic-ai) to whatever SDK the process configured; the Celery instrumentation, which carries the trace context in
task headers, comes with `pip install batchline[otel]`. Spans carry ids, counts, token usage and cost, never a
prompt, a result or a key (the caller's span may carry the prompts when `InstrumentationSettings.include_content`
asks for them).
"""

from __future__ import annotations

from ..costs import cost_of, usage_reader
from .caller import instrument_enabled, stamp, traced_create
from .celery import instrument_celery
from .steps import (
    job_context,
    no_trace,
    record_fetch,
    record_job_done,
    record_part,
    record_poll,
    step,
    summarised,
    tally_for,
)
from .usage import Tally

__all__ = [
    "Tally",
    "cost_of",
    "instrument_celery",
    "instrument_enabled",
    "job_context",
    "no_trace",
    "record_fetch",
    "record_job_done",
    "record_part",
    "record_poll",
    "stamp",
    "step",
    "summarised",
    "tally_for",
    "traced_create",
    "usage_reader",
]

"""The metrics, made once per meter through the OpenTelemetry metrics API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, Meter

SCOPE = "batchline"


@dataclass(frozen=True)
class Instruments:
    jobs_created: Counter
    parts: Counter
    results: Counter
    polls: Counter
    job_duration: Histogram


_made: dict[Any, Instruments] = {}
"""By meter (held here, so its instruments are made once)."""


def instruments(meter: Meter | None = None) -> Instruments:
    """The instruments of `meter` (the global meter provider's `batchline` meter when None)."""
    if meter is None:
        from opentelemetry import metrics

        meter = metrics.get_meter(SCOPE)
    found = _made.get(meter)
    if found is None:
        found = _made[meter] = Instruments(
            jobs_created=meter.create_counter("batchline.jobs.created", "{job}", "Jobs stored and queued"),
            parts=meter.create_counter(
                "batchline.parts", "{part}", "Provider batches entering a state (submitted, ended, stored)"
            ),
            results=meter.create_counter("batchline.results.ingested", "{result}", "Results stored from providers"),
            polls=meter.create_counter("batchline.polls", "{poll}", "Provider status checks"),
            job_duration=meter.create_histogram(
                "batchline.job.duration", "s", "Time from a job's creation to its completion"
            ),
        )
    return found

"""What the tasks hand on: a job's summary, and its custom_ids in the chunks the deliver step sends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .._chunks import chunks
from ..costs import job_cost
from ..runtime import Runtime


def delivery_chunks(runtime: Runtime, job_id: str, size: int) -> Iterator[tuple[str, list[str]]]:
    """The custom_ids of a finished job in request order, `size` at a time, each with its delivered-marker."""
    for number, chunk in enumerate(chunks(runtime.store.request_ids(job_id), size)):
        yield f"chunk:{number}", chunk


def summary(runtime: Runtime, job_id: str) -> dict[str, Any]:
    """A job's counts, status, token usage and cost, with no prompt and no result text: what tasks return and Flower
    shows."""
    job = runtime.store.load_job(job_id)
    cost = job_cost(job)
    return {
        "job_id": job_id,
        "status": job.state.value,
        "total": job.total,
        "succeeded": job.succeeded,
        "failed": job.failed,
        "anomalies": job.anomalies,
        "cached": job.cached,
        "input_tokens": job.input_tokens,
        "output_tokens": job.output_tokens,
        "cost": None if cost is None else float(cost),  # USD at batch prices; None when the model has no known price
    }

"""What a job looks like from outside, read from the store on the caller's side: the API's `Batch`, and the counts
and next poll the CLI shows beside it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from .agents.records import is_agent_job
from .cache import WAITING
from .costs import job_cost
from .pipeline import poll_countdown
from .records import PartRecord, PartState
from .runtime import Runtime
from .types import Batch, BatchStatus, BatchUsage, ProviderBatch


def batch_of(runtime: Runtime, job_id: str) -> Batch:
    """The job's current state as a `Batch`; JobNotFound when the store has no such job."""
    if is_agent_job(job_id):
        from .agents.status import agent_batch_of  # loads pydantic-ai's messages: only for an agent job

        return agent_batch_of(runtime, job_id)
    store = runtime.store
    job = store.load_job(job_id)
    parts = store.parts(job_id, job.parts)
    return Batch(
        id=job_id,
        model=job.model,
        status=job.state,
        created_at=datetime.fromtimestamp(job.created_at, UTC),
        completed_at=datetime.fromtimestamp(job.completed_at, UTC) if job.completed_at else None,
        request_count=job.total,
        completed_count=job.succeeded,
        failed_count=job.failed,
        anomaly_count=job.anomalies,
        cached_count=job.cached,
        provider_batches=[
            ProviderBatch(
                part=n,
                id=part.provider_id or None,
                status=part.provider_status or part.state.value,
                request_count=part.total,
                completed_count=part.completed,
                failed_count=part.failed,
                error=part.error or None,
            )
            for n, part in enumerate(parts)
        ],
        usage=BatchUsage(input_tokens=job.input_tokens, output_tokens=job.output_tokens),
        cost=job_cost(job),
        max_cost=job.max_cost,
        cancel_reason=job.cancel_reason,
    )


def settled(runtime: Runtime, job_id: str) -> bool:
    """Every part is at the provider, and any part the provider ended at once has its results stored."""
    job = runtime.store.load_job(job_id)
    if job.state.is_final:
        return True
    if job.state == BatchStatus.PENDING:
        return False  # the submit step has not finished
    parts = runtime.store.parts(job_id, job.parts)
    if all(part.state == PartState.STORED for part in parts):
        return False  # the job ends just after its last part is stored (and its files cleaned up): wait for that
    return all(
        part.state == PartState.STORED
        or (part.state == PartState.SUBMITTED and part.provider_state in ("running", "cancelling"))
        or (part.state == PartState.PENDING and part.provider_status == WAITING)  # for another job, on its poll chain
        for part in parts
    )


def batch_once_settled(runtime: Runtime, job_id: str, submit_wait: float) -> Batch:
    """The job as a `Batch` once the provider has accepted it (`settled`), or after `submit_wait` seconds."""
    deadline = time.monotonic() + submit_wait
    delay = 0.005
    while time.monotonic() < deadline and not settled(runtime, job_id):
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    return batch_of(runtime, job_id)


def stored_parts(runtime: Runtime, job_id: str, count: int) -> list[PartRecord]:
    """The first `count` parts of a job, as the store holds them."""
    return runtime.store.parts(job_id, count)


def is_raw(runtime: Runtime, job_id: str) -> bool:
    """Whether the job holds a provider's own request bodies (raw mode): its results export as the provider's
    lines. False for a job the store does not hold."""
    job = runtime.store.job(job_id)
    return job is not None and job.raw


def part_counts(part: PartRecord) -> tuple[int, int, int]:
    """A part's succeeded, failed and not run (cancelled or expired before they ran) requests.

    The provider counts only what it ran; once a part has ended, the rest of its requests are stored as cancelled,
    expired or failed results, and are counted here the same way as in the job's totals.
    """
    total, ok, bad = part.total, part.completed, part.failed
    ended = part.ended and part.resubmitted_as is None
    rest = max(0, total - ok - bad) if ended else 0
    if part.provider_state in ("cancelled", "expired"):
        return ok, bad, rest
    return ok, bad + rest, 0


def job_counts(batch: Batch, parts: list[PartRecord]) -> tuple[int, int, int]:
    """The job's succeeded, failed and not run results: its stored failures less those that never ran."""
    not_run = sum(part_counts(part)[2] for part in parts)
    not_run = min(not_run, batch.failed_count)  # until they are stored, they are in neither count
    return batch.completed_count, batch.failed_count - not_run, not_run


def next_poll(runtime: Runtime, job_id: str) -> tuple[float, float] | None:
    """Seconds until the workers next ask the provider about the job (its soonest part), and the job's poll interval;
    None when no part is waiting at the provider (or there is no such job).

    A part's next poll is its time in the due set (see `due_polls`); a part not in it (a poll running, or one sent
    by an older batchline as a countdown) is due one countdown after its last poll, the countdown its poll computed
    from the poll count it had then.
    """
    store = runtime.store
    job = store.job(job_id)
    if job is None:
        return None
    now = time.time()
    soonest: float | None = None
    for n, part in enumerate(store.parts(job_id, job.parts)):
        if part.state != PartState.SUBMITTED:
            continue
        due = runtime.due.when(job_id, n)
        if due is None:
            last = store.last_poll(job_id, n)
            due = now if part.polls == 0 or last is None else last + poll_countdown(runtime, job, part.polls - 1)
        soonest = due if soonest is None else min(soonest, due)
    if soonest is None:
        return None
    return max(0.0, soonest - now), job.poll_interval

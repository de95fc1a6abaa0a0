"""How a job ends: finished once every part is stored, or cancelled on request."""

from __future__ import annotations

import time

from ..providers import Snapshot
from ..records import JobRecord, PartRecord, PartState
from ..runtime import Runtime
from ..telemetry import record_job_done
from ..types import BatchStatus
from .base import Next, end_part, log
from .claims import CANCEL, is_cancels, new_claim

_ACTIVE = (BatchStatus.PENDING, BatchStatus.IN_PROGRESS, BatchStatus.CANCELLING)
UNCREATED = Snapshot("", "not_created", "cancelled")
"""How a part a cancel ended before its batch was created ends."""


def finish(runtime: Runtime, job_id: str) -> bool:
    """End the job once every part is stored; True for the one caller that ended it."""
    store = runtime.store
    job = store.load_job(job_id)
    parts = store.parts(job_id, job.parts)
    if any(part.state != PartState.STORED for part in parts):
        return False
    if store.load_job(job_id).parts != job.parts:
        # A resubmission added a part between the two reads (it does so before its own part is stored, so it shows
        # by now): that part's fetch ends the job.
        return False
    outcome = final_status(job, parts)
    # The prompts go first: a caller who sees the job ended finds none of them left. With every part stored, nothing
    # reads them again (a resubmit makes its part before the part it comes from is stored).
    store.drop_requests(job_id)
    if not store.transition_job(job_id, outcome, *_ACTIVE, completed_at=time.time()):
        return False
    store.touch(job_id, len(parts))
    record_job_done(runtime, job, outcome.value)
    log.info("job %s %s", job_id, outcome.value)
    return True


def final_status(job: JobRecord, parts: list[PartRecord]) -> BatchStatus:
    states = {part.provider_state for part in parts}
    if job.state == BatchStatus.CANCELLING or "cancelled" in states:
        return BatchStatus.CANCELLED
    if states == {"failed"}:
        return BatchStatus.FAILED
    if states == {"expired"}:
        return BatchStatus.EXPIRED
    return BatchStatus.COMPLETED


def request_cancel(runtime: Runtime, job_id: str) -> bool:
    """Mark a running job as cancelling; the cancel task and the polls then stop its provider batches."""
    return runtime.store.transition_job(job_id, BatchStatus.CANCELLING, BatchStatus.PENDING, BatchStatus.IN_PROGRESS)


def cancel(runtime: Runtime, job_id: str) -> list[Next]:
    """Ask the provider to cancel every part of a cancelling job that has not ended."""
    store = runtime.store
    job = store.load_job(job_id)
    if job.state != BatchStatus.CANCELLING:
        return []
    provider = runtime.provider(job.model, job.endpoint)
    nexts: list[Next] = []
    for n, part in enumerate(store.parts(job_id, job.parts)):
        if part.state == PartState.SUBMITTED:
            snapshot = provider.cancel(part.provider_id)
            if snapshot.ended:
                end_part(runtime, job_id, n, snapshot)
                nexts.append(Next("fetch", n))
            else:
                nexts.append(Next("poll", n))
        elif part.state == PartState.PENDING and claimed_for_cancel(runtime, job_id, n):
            end_part(runtime, job_id, n, UNCREATED)
            nexts.append(Next("fetch", n))
    return nexts


def claimed_for_cancel(runtime: Runtime, job_id: str, n: int) -> bool:
    """Take a pending part's claim for a cancel, which then ends it uncreated. An earlier cancel's claim counts as
    taken: that cancel stopped between its claim and ending the part, and nobody else would end it."""
    store = runtime.store
    return store.claim_part(job_id, n, new_claim(CANCEL)) or is_cancels(store.part(job_id, n).claim)

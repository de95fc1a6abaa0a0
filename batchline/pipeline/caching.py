"""The response cache's place in the steps (see `batchline.cache`): a part of a cache job is screened before it is
sent, a part that waits for another job is looked at again on its poll chain, and a part's stored results are shared
before it is marked stored."""

from __future__ import annotations

import time

from ..cache import SCREENED, WAITING, CacheStore
from ..records import JobRecord, PartRecord, PartState
from ..runtime import Runtime
from ..types import BatchStatus
from .base import Next, end_part
from .ending import UNCREATED, claimed_for_cancel, finish, request_cancel


def before_create(
    runtime: Runtime, job_id: str, job: JobRecord, n: int, part: PartRecord
) -> tuple[PartRecord | None, list[Next]]:
    """A pending part of a cache job, as it is to be sent (None: nothing of it is sent now), and the steps its
    screening calls for: the poll chain of a part that waits."""
    if part.provider_status == WAITING:
        return None, [Next("poll", n)]  # its poll chain looks again (a second chain is harmless)
    if part.provider_status != SCREENED:
        screened = CacheStore(runtime.store).screen(job_id, job, n, "first")
        nexts = []
        if screened.spawned is not None:
            runtime.store.record_poll(job_id, screened.spawned, counted=False)  # the sweep keeps its chain alive
            nexts.append(Next("poll", screened.spawned))
        part = runtime.store.part(job_id, n)
        if part.state != PartState.PENDING or part.provider_status != SCREENED:
            return None, nexts  # all answered, or another step has it (a cancel, a second submit)
        return part, nexts
    return part, []


def wait(runtime: Runtime, job_id: str, job: JobRecord, n: int, again: Next) -> Next | None:
    """A poll of a part waiting for other jobs: take the answers they stored, and send what they no longer will;
    `again` while some still wait."""
    store = runtime.store
    if job.deadline and time.time() >= job.deadline and request_cancel(runtime, job_id):
        job = store.load_job(job_id)
    if job.state == BatchStatus.CANCELLING:
        if claimed_for_cancel(runtime, job_id, n):
            end_part(runtime, job_id, n, UNCREATED)
        return Next("fetch", n)
    screened = CacheStore(store).screen(job_id, job, n, "wait")
    if screened.stored:
        store.forget_poll(job_id, n)  # its poll chain ends here: the sweep has nothing to restart
    if screened.spawned is not None:
        # What goes now is a new part for the submit step to create; the submit polls this part again, if it waits.
        return Next("submit")
    if screened.stored:
        return Next("deliver") if finish(runtime, job_id) else None
    store.record_poll(job_id, n)
    return again


def settle(runtime: Runtime, job_id: str, job: JobRecord, n: int) -> None:
    """Share part `n`'s stored results (see `CacheStore.settle`)."""
    CacheStore(runtime.store).settle(job_id, job, n)

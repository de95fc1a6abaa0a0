"""The poll step: ask the provider about one part, and when to ask again."""

from __future__ import annotations

import time

from ..cache import WAITING
from ..errors import HostileAnswer, MalformedAnswer, ProviderRejected
from ..providers import Snapshot
from ..records import JobRecord, PartState
from ..runtime import Runtime
from ..store import found
from ..telemetry import record_poll
from ..types import BatchStatus
from . import caching
from .base import NOT_FOUND, UNREADABLE, Next, end_part, guarded, poisoned, snapshot_fields
from .ending import request_cancel
from .overdue import AFTER_DEADLINE, overdue_for, stop_overdue


def poll(runtime: Runtime, job_id: str, n: int) -> Next | None:
    """Ask the provider about part `n` once; fetch it once it ended, else poll again after a growing interval."""
    store = runtime.store
    record, part = store.job_and_part(job_id, n)  # one round trip: a poll runs often
    job = found(record, job_id)
    if part.state == PartState.ENDED:
        return Next("fetch", n)
    if part.state == PartState.PENDING and part.provider_status == WAITING:  # a cache job's, waiting for another job
        again = Next("poll", n, countdown=poll_countdown(runtime, job, part.polls))
        return caching.wait(runtime, job_id, job, n, again)
    if part.state == PartState.PENDING:
        return _not_created(runtime, job_id, job, n)
    if part.state != PartState.SUBMITTED:
        store.forget_poll(job_id, n)  # already stored: the sweep has nothing to send it again
        return None
    if job.deadline and time.time() >= job.deadline and request_cancel(runtime, job_id):
        job = store.load_job(job_id)  # the job's timeout passed: this poll cancels the batch
    provider = runtime.provider(job.model, job.endpoint)
    try:
        snapshot = guarded("the batch's status", lambda: provider.status(part.provider_id))
    except (MalformedAnswer, HostileAnswer) as error:
        # An answer that cannot be read, or that points where batchline must not go: tried a few times, then the
        # part ends failed with the cause, so the job ends and each of its requests carries it.
        if not isinstance(error, HostileAnswer) and not poisoned(runtime, job_id, n, "poll"):
            raise
        end_part(runtime, job_id, n, Snapshot(part.provider_id, UNREADABLE, "failed", error=str(error)))
        return Next("fetch", n)
    except ProviderRejected as error:
        if error.status_code != 404:
            raise
        # Deleted at the provider (or never there): polling it again cannot help; its requests carry the reason.
        snapshot = Snapshot(part.provider_id, NOT_FOUND, "failed", error=str(error))
        end_part(runtime, job_id, n, snapshot)
        return Next("fetch", n)
    record_poll(runtime, job.model)
    if job.state == BatchStatus.CANCELLING and snapshot.state == "running":
        snapshot = provider.cancel(snapshot.id)
    if snapshot.ended:
        store.record_poll(job_id, n)
        end_part(runtime, job_id, n, snapshot)
        return Next("fetch", n)
    if (age := overdue_for(runtime, job_id, job, n, part)) is not None:
        return stop_overdue(runtime, provider, job_id, n, part, snapshot, age)
    # A readable answer clears the poisoned and busy tries: only answers unreadable one after another end a part.
    store.polled(job_id, n, PartState.SUBMITTED, **snapshot_fields(snapshot), poll_poisoned=0, poll_busy=0)
    return Next("poll", n, countdown=poll_countdown(runtime, job, part.polls))


def poll_countdown(runtime: Runtime, job: JobRecord, polls: int) -> float:
    """`poll_interval`, growing by half at every poll, capped (below the broker's visibility timeout)."""
    interval = job.poll_interval * 1.5 ** max(polls - 1, 0)
    if polls == 0:
        interval = min(interval, 1.0)  # the first check comes soon: test batches and small ones end fast
    interval = min(interval, runtime.settings.max_poll_interval, job.max_poll_interval or float("inf"))
    if job.deadline:
        left = job.deadline - time.time()
        # Polled at the deadline, which cancels the batch; then often enough to see the cancel through, no more.
        interval = min(interval, left) if left > 0 else min(interval, AFTER_DEADLINE)
    return interval


def _not_created(runtime: Runtime, job_id: str, job: JobRecord, n: int) -> Next | None:
    """A poll of a part that is not created yet: the sweep found the poll record its resubmission made gone stale, so
    the submit that creates it was lost (a worker died before sending it, or Redis lost the message). A submit
    creates it once, parts being claimed before they are created, or waits for whoever is creating it."""
    if job.state.is_final:
        runtime.store.forget_poll(job_id, n)
        return None
    runtime.store.record_poll(job_id, n, counted=False)  # the sweep asks again only a whole threshold later
    return Next("submit")

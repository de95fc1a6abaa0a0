"""A provider batch that runs past every provider's own window: asked to cancel, then given up, so its job ends.

Before, a provider that said `in_progress` for ever had the batch polled until the job's keys expired: the job never
ended, and its requests never got a result.
"""

from __future__ import annotations

import contextlib
import time

from ..config import KEYS_MARGIN, OVERDUE_GRACE
from ..errors import BatchlineError
from ..providers import Provider, Snapshot
from ..records import JobRecord, PartRecord, PartState
from ..runtime import Runtime
from .base import OVERDUE, Next, end_part, guarded, snapshot_fields

AFTER_DEADLINE = 60.0
"""The longest wait between polls of a batch whose cancel batchline asked for (a job's deadline, an overdue batch)."""


def overdue_for(runtime: Runtime, job_id: str, job: JobRecord, n: int, part: PartRecord) -> float | None:
    """How long part `n`'s batch has run when that is past what batchline waits for, else None.

    Timed from the part's create (`batch_age_limit`), and bounded by the job's keys, timed from the job's create
    (`KEYS_MARGIN`). A part recorded by a batchline that did not note its create is timed from now on."""
    now = time.time()
    if not part.submitted_at:
        runtime.store.set_part(job_id, n, submitted_at=now)
        return None
    settings = runtime.settings
    keys_last = settings.ttl_seconds - OVERDUE_GRACE - settings.max_poll_interval - KEYS_MARGIN
    if now - part.submitted_at > settings.batch_age_limit or now - job.created_at > keys_last:
        return now - part.submitted_at
    return None


def stop_overdue(
    runtime: Runtime, provider: Provider, job_id: str, n: int, part: PartRecord, snapshot: Snapshot, age: float
) -> Next:
    """Ask an overdue batch to cancel (again while it still runs: an ask may have failed) and poll it a minute apart
    for `OVERDUE_GRACE`: a cancel that ends it has what it ran fetched. Then it is given up: the part ends failed,
    each of its requests carrying why."""
    store = runtime.store
    asked = part.overdue_since or time.time()
    if not part.overdue_since:
        store.set_part(job_id, n, overdue_since=asked)
    if snapshot.state == "running":
        with contextlib.suppress(BatchlineError):
            snapshot = guarded("the answer to cancelling the batch", lambda: provider.cancel(snapshot.id))
    if not snapshot.ended and time.time() - asked < OVERDUE_GRACE:
        store.polled(job_id, n, PartState.SUBMITTED, **snapshot_fields(snapshot), poll_poisoned=0, poll_busy=0)
        return Next("poll", n, countdown=AFTER_DEADLINE)
    store.record_poll(job_id, n, counted=False)  # the sweep sends its fetch again if that is lost
    if snapshot.ended:
        end_part(runtime, job_id, n, snapshot)
        return Next("fetch", n)
    error = (
        f"{provider.name} batch {snapshot.id} was still {snapshot.status or snapshot.state} {age / 3600:.0f} hours "
        "after it was created, past what batchline waits for (BATCHLINE_BATCH_AGE_LIMIT; every provider's own window "
        f"is shorter). Its cancel was asked {(time.time() - asked) / 60:.0f} minutes ago and it has not ended: it is "
        "no longer waited for, and may still run, and be billed, at the provider."
    )
    end_part(runtime, job_id, n, Snapshot(snapshot.id, OVERDUE, "failed", total=snapshot.total, error=error))
    return Next("fetch", n)

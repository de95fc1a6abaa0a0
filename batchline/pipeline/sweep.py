"""The sweep's view of the store: poll chains and submits that were lost."""

from __future__ import annotations

import time

from ..runtime import Runtime

RESUBMITS_PER_SWEEP = 1000
"""At most this many submits are re-sent per sweep: a sweep stays a few round trips; the next one takes the rest."""


def stale_polls(runtime: Runtime) -> list[tuple[str, int]]:
    """Parts whose last poll is older than the longest poll interval allows: their poll chain was lost."""
    older_than = time.time() - 2 * runtime.settings.max_poll_interval - runtime.settings.sweep_interval
    return runtime.store.stale_polls(older_than)


def submit_threshold(runtime: Runtime) -> float:
    """How long a `pending` job may go without a submit being sent or running before the sweep sends one.

    A live submit runs again within `claim_timeout` (its longest wait: another worker's claim going stale, and its
    back-off for a busy provider stays below it by default); one sweep interval of slack lets a queue that is a
    little slow not draw a second submit. A second one is safe anyway: parts are claimed before they are created.
    """
    return runtime.settings.claim_timeout + runtime.settings.sweep_interval


def stale_submits(runtime: Runtime, limit: int = RESUBMITS_PER_SWEEP) -> list[str]:
    """Jobs still `pending` whose submit has not been seen for `submit_threshold`: their submit message was lost
    (a Redis that lost its last writes kept the job but not the message). Each is marked as sent now, so a job
    whose submit is only slow gets one more per threshold, not one per sweep."""
    now = time.time()
    store = runtime.store
    stale = store.stale_pending(now - submit_threshold(runtime), limit, expired_before=now - store.ttl)
    for job_id in stale:
        store.submit_seen(job_id, now)
    return stale

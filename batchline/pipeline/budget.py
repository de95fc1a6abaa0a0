"""A job's budget on the workers: once the cost of its stored results passes its `max_cost`, the job is cancelled.

The cost is the one `Batch.cost` shows, from the usage the store counted as each result arrived. Passing the budget
moves the job to `cancelling` with the reason on it; the cancel step then cancels the provider batches still running
and holds back the parts not yet created (as the submit step does for any cancelling job), and every request they
held gets a cancelled result. What had already run is paid for, so the final cost may pass the budget by that much.
"""

from __future__ import annotations

from ..costs import job_cost, usd
from ..runtime import Runtime
from ..types import BatchStatus
from .base import Next, log


def enforce(runtime: Runtime, job_id: str) -> list[Next]:
    """Cancel the job if its cost so far passed its budget and something of it has not run yet; the cancel step to
    send, once, for the caller that moved it."""
    store = runtime.store
    job = store.load_job(job_id)
    if job.max_cost is None or job.state not in (BatchStatus.PENDING, BatchStatus.IN_PROGRESS):
        return []
    cost = job_cost(job)
    if cost is None or cost <= job.max_cost:
        return []
    if all(part.ended for part in store.parts(job_id, job.parts)):
        return []  # every part has run: nothing is left to stop, and the job ends as it is
    reason = f"its cost so far, {usd(cost)}, passed its max_cost of {usd(job.max_cost)}"
    moved = store.transition_job(
        job_id, BatchStatus.CANCELLING, BatchStatus.PENDING, BatchStatus.IN_PROGRESS, cancel_reason=reason
    )
    if not moved:
        return []
    log.warning("job %s: %s; what has not run is cancelled", job_id, reason)
    return [Next("cancel")]

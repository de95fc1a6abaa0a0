"""The shared pools on the worker side: a pool flushes into an ordinary batchline job (submit, poll, fetch as any
job), and when that job ends, every run that waited on it is woken.

A flush is two steps, each atomic: the tickets are taken from the pool and recorded under the new job's id, then the
job is written. A worker that dies between them leaves the record, and the sweep writes the job (once: a job that
exists is never written again, so its provider batch is never made twice).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence

import redis

from ..providers import Encoded, get_provider
from ..records import JobRecord
from ..runtime import Runtime
from ..store_cluster import ClusterStore
from .outbox import Outbox
from .store import AgentStore

log = logging.getLogger("batchline")

RESUME_TASK = "batchline.agent_resume"
"""The `on_complete` of a pool's batch job: wakes the runs that waited on it."""


RESUME_CHUNK = 1000


def flush(runtime: Runtime, out: Outbox, pool: str, force: bool = False) -> str | None:
    """Flush the pool if it is due (or `force`d): answer the batch job made, or None."""
    agents = AgentStore(runtime.store)
    deadline = agents.pool_deadline(pool)
    if deadline is None or (not force and deadline > time.time() + 0.05):
        return None  # flushed already, or refilled since with a later deadline (whose own flush is on its way)
    job_id, tickets = agents.take(pool)
    if not tickets:
        return None
    agents.claim_flush(job_id, runtime.settings.claim_timeout)
    write_job(runtime, out, pool, job_id, tickets)
    return job_id


def write_job(runtime: Runtime, out: Outbox, pool: str, job_id: str, tickets: Sequence[str]) -> None:
    """Write the batch job of a flush (unless it exists) and queue its submit."""
    agents = AgentStore(runtime.store)
    if runtime.store.job(job_id) is None:
        meta = agents.pool_meta(pool)
        rows = [(t, body, None) for t, body in zip(tickets, agents.bodies(pool, tickets), strict=True) if body]
        if not rows:  # every request was withdrawn (their jobs were cancelled)
            agents.flushed(pool, job_id, tickets)
            agents.pool_job_resumed(job_id)
            return
        from ..jobs import plan_parts  # here: a worker that only sweeps never loads pydantic-ai

        model, group = meta["model"], meta.get("group", "")
        provider = get_provider(model)
        parts = plan_parts(provider, [Encoded(t, body, group) for t, body, _ in rows])
        record = JobRecord(
            model=model,
            total=len(rows),
            created_at=time.time(),
            poll_interval=float(meta.get("poll_interval", 60.0)),
            max_resubmissions=2,
            on_complete=RESUME_TASK,
            endpoint=meta.get("endpoint", ""),
        )
        runtime.store.create_job(job_id, record, rows, parts)
        log.info("agent pool %s: batch job %s with %d requests", pool, job_id, len(rows))
    out.submit(job_id)
    agents.flushed(pool, job_id, tickets)


def resume(runtime: Runtime, out: Outbox, job_id: str) -> int:
    """Wake every run whose request batch job `job_id` answered; answer how many."""
    agents = AgentStore(runtime.store)
    tickets = list(runtime.store.request_ids(job_id))
    woken = 0
    for start in range(0, len(tickets), RESUME_CHUNK):
        runs = agents.resumed(job_id, tickets[start : start + RESUME_CHUNK])
        out.steps(runs)
        woken += len(runs)
    agents.pool_job_resumed(job_id)
    return woken


@contextlib.contextmanager
def _each(what: str, name: str) -> Iterator[None]:
    """One item the sweep cannot finish is logged and left for the next sweep; the others still go on. An outage
    still stops the sweep (the task gives its message back)."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError):
        raise
    except Exception as error:
        log.warning("agent sweep: %s %s: %s: %s", what, name, type(error).__name__, error)


def sweep(runtime: Runtime, out: Outbox, limit: int = 1000) -> int:
    """Send again what a crash or a lost message left: runs due for longer than a lease, pools past their deadline,
    flushes never written, batch jobs that ended without waking their runs. Answer how many it sent."""
    if isinstance(runtime.store, ClusterStore):
        return 0  # agent jobs are refused on a cluster store: there are none to sweep
    agents = AgentStore(runtime.store)
    now = time.time()
    grace = runtime.settings.claim_timeout  # how long a flush or a wake-up may take before the sweep finishes it
    sent = 0
    due = agents.due(now - runtime.settings.agent_lease, limit)
    out.steps(due)
    sent += len(due)
    for pool in agents.due_pools(now - 1.0):
        with _each("the pool", pool):
            sent += flush(runtime, out, pool, force=True) is not None
    for job_id, pool, tickets in agents.flushing(now - grace):
        with _each("the flush into", job_id):
            if agents.claim_flush(job_id, runtime.settings.claim_timeout):
                log.warning("agent pool %s: the flush into %s was left half done; the sweep writes it", pool, job_id)
                write_job(runtime, out, pool, job_id, tickets)
                sent += 1
    for job_id in agents.open_pool_jobs(now - grace):
        with _each("the batch job", job_id):
            job = runtime.store.job(job_id)
            if job is not None and job.state.is_final and (job.completed_at or now) < now - grace:
                sent += resume(runtime, out, job_id)
    return sent

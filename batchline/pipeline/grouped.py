"""Polling a group of due parts in one task: each part as the poll step polls it alone, each part's trouble kept
from the others, on a few threads so a slow provider's answers overlap."""

from __future__ import annotations

import contextvars
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from .. import telemetry
from ..due_polls import RENEW, Claim
from ..errors import JobNotFound, ProviderRejected, TransientProviderError, for_log
from ..runtime import Runtime
from .base import OUTAGE, Next
from .polling import poll

log = logging.getLogger("batchline")

THREADS = 8
"""Polls of one group in flight at once: a provider's status answer takes 0.1-0.3 s, nearly all of it waiting."""

Send = Callable[[str, Next], None]
"""Sends a part's next step (a fetch) as a task message; called inside the part's poll span."""

_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def _threads() -> ThreadPoolExecutor:
    """One pool per process, made in the process that uses it (a forked worker child must not inherit a parent's)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool, _pool_pid = ThreadPoolExecutor(THREADS, thread_name_prefix="batchline-poll"), os.getpid()
        return _pool


MAX_RENEWED = 600.0
"""How long a group keeps renewing the lease of a poll that has not come back: past it, the part is left to come
due again (a status answer trickling in under the read timeout must not keep its part from being polled)."""


def poll_group(runtime: Runtime, claim: Claim, send: Send, rearm: Callable[[], None]) -> dict[str, str]:
    """Poll every claimed part once and give each its next time (or its fetch); answer each part's outcome by
    `J:N`. A Redis or broker outage is raised once the others are done (the unfinished parts come due again when
    their lease ends); any other fault is logged and leaves its part to come due again the same way. `rearm` runs
    while a group is slow, so the parts it already gave a time get a tick."""
    if not claim.parts:
        return {}
    pool = _threads()
    # Each poll runs in a copy of this task's context: its span is linked to the task's (see `telemetry.step`).
    futures = {
        pool.submit(contextvars.copy_context().run, poll_one, runtime, claim, job_id, n, send): (job_id, n)
        for job_id, n in claim.parts
    }
    pending: set[Future[str]] = set(futures)
    renew_until = time.monotonic() + MAX_RENEWED
    while pending:
        pending = wait(pending, timeout=RENEW).not_done
        if pending:
            if time.monotonic() < renew_until:
                runtime.due.renew(claim, [futures[f] for f in pending])  # still working on them: nobody else takes them
            rearm()
    outcomes: dict[str, str] = {}
    outage: BaseException | None = None
    for future, (job_id, n) in futures.items():
        error = future.exception()
        key = f"{job_id}:{n}"
        if error is None:
            outcomes[key] = future.result()
        elif isinstance(error, OUTAGE):
            outage = outage or error
            outcomes[key] = "again"
        else:
            log.error("batchline.poll for job %s part %d failed: %s: %s", job_id, n, type(error).__name__, error)
            outcomes[key] = "error"
    if outage is not None:
        raise outage
    return outcomes


def poll_one(runtime: Runtime, claim: Claim, job_id: str, n: int, send: Send) -> str:
    """Poll part `n` of `job_id` once and set what follows: its next poll in the due set, or its fetch."""
    due = runtime.due
    with telemetry.step(runtime, "poll", job_id, n):
        try:
            nxt = poll(runtime, job_id, n)
        except OUTAGE:
            raise
        except JobNotFound:
            due.release(claim, job_id, n)  # deleted, or its time to live ran out
            return "gone"
        except (TransientProviderError, ProviderRejected) as error:
            countdown = backoff(runtime, job_id, n, error)
            log.warning("batchline.poll for job %s: %s; again in %.0fs", job_id, for_log(error), countdown)
            due.schedule(job_id, n, time.time() + countdown)
            return "busy"
        except Exception as error:  # a fault of batchline's own: logged, and the part is tried again later
            log.error("batchline.poll for job %s part %d failed: %s: %s", job_id, n, type(error).__name__, error)
            due.schedule(job_id, n, time.time() + runtime.settings.max_poll_interval)
            return "error"
        if nxt is None:
            due.release(claim, job_id, n)
            return "done"
        if nxt.step == "poll":
            due.schedule(job_id, n, time.time() + nxt.countdown)
            return "waiting"
        send(job_id, nxt)  # before it leaves the set: a crash between polls it again, and a fetch is safe twice
        due.release(claim, job_id, n)
        return nxt.step


def backoff(runtime: Runtime, job_id: str, n: int, error: TransientProviderError | ProviderRejected) -> float:
    """Soon for a busy provider, slowly for a refusal (a revoked key may be fixed), doubling with each try in a row;
    the provider's own `retry_after` first, within one second and the poll cap."""
    cap = runtime.settings.max_poll_interval
    given = getattr(error, "retry_after", None)
    if given is not None and math.isfinite(given):
        return min(max(float(given), 1.0), cap)
    tries = runtime.store.strike(job_id, n, "poll_busy")
    if isinstance(error, TransientProviderError):
        cap = min(cap, 300.0)
    return min(2.0 ** (tries - 1), cap)

"""The Celery tasks: thin, they carry ids only and call the pipeline.

Every task is named `batchline.<step>`, so Flower shows clear names and nothing collides with a project's own
`tasks` modules. Arguments are a job id and a part number; prompts, results and keys never travel in a message.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from celery import Celery, Task, shared_task
from celery.backends.base import DisabledBackend
from celery.exceptions import Reject
from celery.signals import worker_ready

from . import pipeline, telemetry
from .delivery import DeliveryLease, refuse_delivery, send_completion
from .due_polls import GROUP, TICK_SLACK
from .errors import ProviderRejected, TransientProviderError, for_log
from .pipeline import Next
from .pipeline.base import OUTAGE
from .runtime import Runtime, runtime_for

log = logging.getLogger("batchline")

_RELIABLE: dict[str, Any] = {"bind": True, "acks_late": True, "reject_on_worker_lost": True, "max_retries": None}
"""A task's message is acknowledged only once its step is done; a worker killed mid-step leaves it to redeliver."""

_OUTAGE = OUTAGE

_OUTAGE_PAUSE = 1.0

_lock = threading.Lock()

F = TypeVar("F", bound=Callable[..., Any])


def _requeue_on_outage(step: F) -> F:
    """Give the message back instead of failing the step when Redis is unreachable.

    Celery acknowledges a failed task, and Redis may be back by the time it does: the step would be lost and the
    job would stall. Rejected with requeue, the message goes back to its queue (or, while Redis is still down, stays
    unacknowledged and the transport gives it back on reconnection); every step is safe to run again.
    """

    @functools.wraps(step)
    def run(self: Task[Any, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return step(self, *args, **kwargs)
        except Reject as rejected:
            # `self.retry` rejects without requeue when it cannot publish the retry: the same outage.
            reason = getattr(rejected, "reason", None)  # not in the type stubs
            if not isinstance(reason, _OUTAGE):
                raise
            error: Exception = reason
        except _OUTAGE as outage:
            error = outage
        log.warning("%s: Redis unreachable (%s); the message goes back", self.name, error)
        time.sleep(_OUTAGE_PAUSE)  # a store that stays down while the broker is up: no busy loop of redeliveries
        raise Reject(f"Redis unreachable: {error}", requeue=True) from None

    return run  # type: ignore[return-value]


def _retry_later(task: Task[Any, Any], job_id: str, error: TransientProviderError | ProviderRejected) -> Exception:
    """Try the step again later: soon for a busy provider, slowly for a refusal (a revoked key may be fixed)."""
    cap = 300.0 if isinstance(error, TransientProviderError) else runtime_for(task.app).settings.max_poll_interval
    countdown = getattr(error, "retry_after", None) or min(2.0 ** (task.request.retries or 0), cap)
    log.warning("%s for job %s: %s; again in %.0fs", task.name, job_id, for_log(error), countdown)
    # Sent here, raised by the caller `from None`: raised in here, inside the caller's `except`, the Retry kept the
    # provider's error as its context, and Celery put that traceback, the provider's words in it, in Flower and the
    # result backend.
    return task.retry(countdown=countdown, throw=False)


@contextlib.contextmanager
def _provider_errors_retry(task: Task[Any, Any], job_id: str) -> Iterator[None]:
    """Turn a provider that is busy or refused into a retry of the step (see `_retry_later`)."""
    try:
        yield
    except (TransientProviderError, ProviderRejected) as error:
        raise _retry_later(task, job_id, error) from None


def _schedule(task: Task[Any, Any], job_id: str, nexts: list[Next]) -> None:
    """Send the next steps through the app running `task` (a shared task alone would pick Celery's current app); a
    poll waits in the due set, not as a message."""
    for nxt in nexts:
        if nxt.step == "poll":
            _poll_later(task.app, runtime_for(task.app), job_id, nxt)
            continue
        whole_job = nxt.step in ("submit", "deliver", "cancel")
        args: tuple[str] | tuple[str, int] = (job_id,) if whole_job else (job_id, nxt.part)
        task.app.send_task(f"batchline.{nxt.step}", args=args, countdown=nxt.countdown or None)


def _progress_reporter(task: Task[Any, Any]) -> Callable[[int, int], None]:
    """Show a fetch's progress in Flower: a `task-progress` event, and a PROGRESS state where results are kept."""
    keeps_results = not isinstance(task.app.backend, DisabledBackend)

    def report(stored: int, total: int) -> None:
        task.send_event("task-progress", completed=stored, total=total)
        if keeps_results:
            task.update_state(state="PROGRESS", meta={"completed": stored, "total": total})

    return report


@shared_task(name="batchline.submit", **_RELIABLE)
@_requeue_on_outage
def submit(self: Task[Any, Any], job_id: str) -> dict[str, Any]:
    runtime = runtime_for(self.app)
    with telemetry.step(runtime, "submit", job_id):
        with _provider_errors_retry(self, job_id):
            for nxt in pipeline.submit(runtime, job_id):
                _schedule(self, job_id, [nxt])
        return telemetry.summarised(runtime, pipeline.summary(runtime, job_id))


# One part's poll: the sweep sends it for a part whose polls went stale, and a poll an older batchline sent as a
# countdown retry still arrives as one. Either way the part's next poll (also after a busy or refusing provider)
# goes into the due set. It keeps no result.
@shared_task(name="batchline.poll", ignore_result=True, **_RELIABLE)
@_requeue_on_outage
def poll(self: Task[Any, Any], job_id: str, part: int) -> dict[str, Any] | None:
    runtime = runtime_for(self.app)
    with telemetry.step(runtime, "poll", job_id, part):
        try:
            nxt = pipeline.poll(runtime, job_id, part)
        except (TransientProviderError, ProviderRejected) as error:
            countdown = pipeline.backoff(runtime, job_id, part, error)
            log.warning("batchline.poll for job %s: %s; again in %.0fs", job_id, for_log(error), countdown)
            nxt = Next("poll", part, countdown)
        if nxt is not None and nxt.step == "fetch":
            runtime.due.forget(job_id, part)  # ended: a group must not poll it (and send its fetch) again
        _schedule(self, job_id, [nxt] if nxt else [])  # waiting holds no message and no worker slot: see due_polls
        return telemetry.summarised(runtime, pipeline.summary(runtime, job_id))


def _poll_later(app: Celery, runtime: Runtime, job_id: str, nxt: Next) -> None:
    at = time.time() + nxt.countdown
    runtime.due.schedule(job_id, nxt.part, at)
    _tick_at(app, runtime, at)


def _tick_at(app: Celery, runtime: Runtime, at: float | None) -> None:
    """Make sure a `batchline.poll_due` tick runs by `at`: send one unless one already waits for about then."""
    if at is None or (tick := runtime.due.want_tick(at)) is None:
        return
    try:
        with telemetry.no_trace(runtime):
            app.send_task("batchline.poll_due", kwargs={"tick": tick}, countdown=max(at - time.time(), 0.0) or None)
    except BaseException:
        runtime.due.tick_ran(tick)  # not sent: its note must not hold back the next one
        raise


# The result is each polled part's outcome by `J:N` ("waiting", "fetch", ...): Flower shows it, and finds a job's
# polls by searching for its id. No result is written to the backend for each group.
@shared_task(name="batchline.poll_due", ignore_result=True, **_RELIABLE)
@_requeue_on_outage
def poll_due(self: Task[Any, Any], tick: str | None = None) -> dict[str, str]:
    """Poll a group of the parts that are due (see `due_polls`), then have a tick wait for the next one."""
    runtime = runtime_for(self.app)
    due = runtime.due
    if tick is not None:
        due.tick_ran(tick)
    claim = due.claim()
    backlog = len(claim.parts) == GROUP
    if backlog:
        _tick_at(self.app, runtime, time.time())  # more are due: a tick for now, which a free slot may take meanwhile

    def rearm() -> None:
        earliest = due.earliest()
        _tick_at(self.app, runtime, None if earliest is None else max(earliest, time.time() + TICK_SLACK))

    try:
        return pipeline.poll_group(runtime, claim, lambda job_id, nxt: _schedule(self, job_id, [nxt]), rearm)
    finally:
        if not backlog:  # with a backlog, the tick sent above goes on with it
            with contextlib.suppress(*_OUTAGE):  # the message goes back (see _requeue_on_outage) and re-arms then
                rearm()


@shared_task(name="batchline.fetch", **_RELIABLE)
@_requeue_on_outage
def fetch(self: Task[Any, Any], job_id: str, part: int) -> dict[str, Any]:
    runtime = runtime_for(self.app)
    with telemetry.step(runtime, "fetch", job_id, part):
        with _provider_errors_retry(self, job_id):
            _schedule(self, job_id, pipeline.fetch(runtime, job_id, part, progress=_progress_reporter(self)))
        return telemetry.summarised(runtime, pipeline.summary(runtime, job_id))


@shared_task(name="batchline.cancel", **_RELIABLE)
@_requeue_on_outage
def cancel(self: Task[Any, Any], job_id: str) -> dict[str, Any]:
    runtime = runtime_for(self.app)
    with telemetry.step(runtime, "cancel", job_id):
        with _provider_errors_retry(self, job_id):
            _schedule(self, job_id, pipeline.cancel(runtime, job_id))
        return telemetry.summarised(runtime, pipeline.summary(runtime, job_id))


@shared_task(name="batchline.deliver", **_RELIABLE)
@_requeue_on_outage
def deliver(self: Task[Any, Any], job_id: str) -> dict[str, Any]:
    """Send the job's results to its callback task in chunks of ids, then its summary to on_complete, once each."""
    runtime = runtime_for(self.app)
    with telemetry.step(runtime, "deliver", job_id):
        return telemetry.summarised(runtime, _deliver(self, runtime, job_id))


def _deliver(task: Task[Any, Any], runtime: Runtime, job_id: str) -> dict[str, Any]:
    store = runtime.store
    if store.is_delivered(job_id, pipeline.DELIVERED):
        return pipeline.summary(runtime, job_id)
    lease = DeliveryLease(store.redis, store.job_key(job_id, ":delivering"), task.request.id or uuid.uuid4().hex)

    def hold() -> None:
        """Go on only while this delivery holds the lease; one that stalled past it leaves the rest to the holder."""
        if not lease.renew():
            raise task.retry(countdown=lease.left(), throw=False)

    if not lease.take():
        raise task.retry(countdown=lease.left(), throw=False)
    try:
        job = store.load_job(job_id)
        callback, on_complete = job.callback, job.on_complete
        # Refusal is checked again here: the job record may not have come from the API.
        if not refuse_delivery(runtime, job_id, job):
            if callback:
                for marker, custom_ids in pipeline.delivery_chunks(runtime, job_id, job.chunk_size):
                    if not store.is_delivered(job_id, marker):
                        hold()
                        task.app.send_task(callback, args=(job_id, custom_ids))
                        store.mark_delivered(job_id, marker)
            if on_complete and not store.is_delivered(job_id, "complete"):
                hold()
                send_completion(task.app, on_complete, pipeline.summary(runtime, job_id))
                store.mark_delivered(job_id, "complete")
        store.mark_delivered(job_id, pipeline.DELIVERED)  # a fetch that runs again sends no second delivery step
    finally:
        lease.free()
    return pipeline.summary(runtime, job_id)


@shared_task(name="batchline.sweep", bind=True)
def sweep(self: Task[Any, Any]) -> int:
    """Re-enqueue the poll of every part whose poll chain was lost (a worker died holding it), and the submit of every
    job left `pending` with no submit (its message was lost); answer how many steps it sent."""
    runtime = runtime_for(self.app)
    with telemetry.step(runtime, "sweep"):
        stale = pipeline.stale_polls(runtime)
        for job_id, part in stale:
            with telemetry.job_context(runtime, job_id):  # the re-sent poll goes on in its job's trace
                self.app.send_task("batchline.poll", args=(job_id, part))
        # Light: the agents' worker side loads pydantic-ai only to run a round.
        from .agents.outbox import CeleryOutbox
        from .agents.pools import sweep as sweep_agents

        try:
            agent_steps = sweep_agents(runtime, CeleryOutbox(self.app))
        except _OUTAGE:
            raise
        except Exception as error:  # the agents' part never stops the jobs' part below
            log.warning("sweep: the agents' part failed: %s: %s", type(error).__name__, error)
            agent_steps = 0
        _tick_at(self.app, runtime, runtime.due.earliest())  # a tick lost with its broker: polling goes on
        resubmit = pipeline.stale_submits(runtime)
        for job_id in resubmit:
            log.warning("job %s: still pending with no submit seen; the sweep sends one", job_id)
            with telemetry.job_context(runtime, job_id):
                self.app.send_task("batchline.submit", args=(job_id,))
        return len(stale) + len(resubmit) + agent_steps


KEEP_TICKING = 30.0
_ticking: set[int] = set()


@worker_ready.connect
def _keep_polls_ticking(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if app is not None and app.conf.get("batchline_settings") is not None:
        keep_polls_ticking(app)


def keep_polls_ticking(app: Celery) -> None:
    """While a worker of `app` runs (a `celery worker`, or the embedded one), check every `KEEP_TICKING` seconds that
    a tick waits for the earliest due poll: a tick message lost with a broker's data is replaced even where no beat
    runs the sweep. Once per app and process."""
    with _lock:
        if id(app) in _ticking:
            return
        _ticking.add(id(app))

    def keep_ticking() -> None:
        while True:
            try:
                runtime = runtime_for(app)
                _tick_at(app, runtime, runtime.due.earliest())
            except Exception as error:  # Redis or the broker away: the next round tries again
                log.debug("batchline: could not check the poll tick: %s", error)
            time.sleep(KEEP_TICKING)

    threading.Thread(target=keep_ticking, name="batchline-poll-tick", daemon=True).start()

"""The Celery tasks of agent jobs: `batchline.agent_step` takes one run on, `batchline.agent_flush` sends a pool to
the provider, `batchline.agent_resume` wakes the runs a batch answered. Ids in, as every batchline task: the runs'
prompts, histories and outputs stay in the store. The worker-side modules load on first use, so a worker that runs
no agent never imports pydantic-ai's agents."""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
from collections import Counter
from collections.abc import Coroutine
from typing import Any, TypeVar

from celery import Task, shared_task
from celery.signals import worker_init

from .. import telemetry
from ..config import Settings
from ..runtime import runtime_for
from ..tasks import _RELIABLE, _requeue_on_outage
from .outbox import CeleryOutbox

T = TypeVar("T")
log = logging.getLogger("batchline")


@worker_init.connect
def _import_allowed_agents(sender: Any = None, **_: Any) -> None:
    """Import the agents the workers allow in the main process, before it forks its pool: each pool process starts
    with them (and pydantic-ai) loaded, instead of spending its first round on imports."""
    app = getattr(sender, "app", None)
    if app is None:
        return
    settings: Settings = app.conf.get("batchline_settings") or Settings.load(app.conf)  # no Redis client before fork
    modules = {path.partition(":")[0] for path in settings.allowed_agents}
    if not modules:
        return
    from . import stepping  # noqa: F401  (pydantic-ai's agent graph)

    for module in sorted(modules):
        try:
            importlib.import_module(module)
        except Exception as error:  # a job naming it fails then, with this error as its runs' error
            log.warning("allowed agent module %s could not be imported: %s", module, error)
    log.info("imported the allowed agent modules: %s", ", ".join(sorted(modules)))


_local = threading.local()


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on one event loop per worker thread, kept between tasks: pydantic-ai binds a model's HTTP client to the
    loop it was made on, and a new loop per step would make it a new client (with a new TLS context) every round."""
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coroutine)


@shared_task(name="batchline.agent_step", **_RELIABLE)
@_requeue_on_outage
def agent_step(self: Task[Any, Any], runs: list[tuple[str, int]]) -> dict[str, Any]:
    """Take a chunk of runs `[job_id, index]` on, side by side; answer where each stopped."""
    from .stepping import advance

    runtime = runtime_for(self.app)
    out = CeleryOutbox(self.app)

    async def one(job_id: str, index: int) -> str:
        with telemetry.step(runtime, "agent_step", job_id, run=index):  # an instrumented agent's own spans nest
            return await advance(runtime, out, job_id, index)

    async def chunk() -> list[str | BaseException]:
        return await asyncio.gather(*(one(str(j), int(i)) for j, i in runs), return_exceptions=True)

    outcomes = _run(chunk())
    for outcome in outcomes:  # the others' rounds are saved; this one's runs go again when the message comes back
        if isinstance(outcome, BaseException):
            raise outcome
    return {"runs": len(runs), "outcomes": dict(Counter(str(o) for o in outcomes))}


@shared_task(name="batchline.agent_flush", **_RELIABLE)
@_requeue_on_outage
def agent_flush(self: Task[Any, Any], pool: str, force: bool = False) -> dict[str, Any]:
    from .pools import flush

    runtime = runtime_for(self.app)
    with telemetry.step(runtime, "agent_flush"):
        return {"pool": pool, "batch_job": flush(runtime, CeleryOutbox(self.app), pool, force)}


@shared_task(name="batchline.agent_resume", **_RELIABLE)
@_requeue_on_outage
def agent_resume(self: Task[Any, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """The `on_complete` of a pool's batch job, with its summary."""
    from .pools import resume

    job_id = str(summary.get("job_id", ""))
    runtime = runtime_for(self.app)
    with telemetry.step(runtime, "agent_resume", job_id):
        return {"batch_job": job_id, "runs_woken": resume(runtime, CeleryOutbox(self.app), job_id)}

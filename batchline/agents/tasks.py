"""The Celery tasks of agent jobs: `batchline.agent_step` takes one run on, `batchline.agent_flush` sends a pool to
the provider, `batchline.agent_resume` wakes the runs a batch answered. Ids in, as every batchline task: the runs'
prompts, histories and outputs stay in the store. The worker-side modules load on first use, so a worker that runs
no agent never imports pydantic-ai's agents."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from celery import Task, shared_task

from .. import telemetry
from ..runtime import runtime_for
from ..tasks import _RELIABLE, _requeue_on_outage
from .outbox import CeleryOutbox

T = TypeVar("T")


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
def agent_step(self: Task[Any, Any], job_id: str, index: int) -> dict[str, Any]:
    from .stepping import advance

    runtime = runtime_for(self.app)
    with telemetry.step(runtime, "agent_step", job_id, run=index):  # the agent's own spans, if it is instrumented, nest
        outcome = _run(advance(runtime, CeleryOutbox(self.app), job_id, index))
    return {"job_id": job_id, "run": index, "outcome": outcome}


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

"""The Celery tasks of agent jobs: `batchline.agent_step` takes one run on, `batchline.agent_flush` sends a pool to
the provider, `batchline.agent_resume` wakes the runs a batch answered. Ids in, as every batchline task: the runs'
prompts, histories and outputs stay in the store. The worker-side modules load on first use, so a worker that runs
no agent never imports pydantic-ai's agents."""

from __future__ import annotations

import asyncio
from typing import Any

from celery import Task, shared_task

from ..runtime import runtime_for
from ..tasks import _RELIABLE, _requeue_on_outage
from .outbox import CeleryOutbox


@shared_task(name="batchline.agent_step", **_RELIABLE)
@_requeue_on_outage
def agent_step(self: Task[Any, Any], job_id: str, index: int) -> dict[str, Any]:
    from .stepping import advance

    outcome = asyncio.run(advance(runtime_for(self.app), CeleryOutbox(self.app), job_id, index))
    return {"job_id": job_id, "run": index, "outcome": outcome}


@shared_task(name="batchline.agent_flush", **_RELIABLE)
@_requeue_on_outage
def agent_flush(self: Task[Any, Any], pool: str, force: bool = False) -> dict[str, Any]:
    from .pools import flush

    return {"pool": pool, "batch_job": flush(runtime_for(self.app), CeleryOutbox(self.app), pool, force)}


@shared_task(name="batchline.agent_resume", **_RELIABLE)
@_requeue_on_outage
def agent_resume(self: Task[Any, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """The `on_complete` of a pool's batch job, with its summary."""
    from .pools import resume

    job_id = str(summary.get("job_id", ""))
    return {"batch_job": job_id, "runs_woken": resume(runtime_for(self.app), CeleryOutbox(self.app), job_id)}

"""What a worker-side agent step asks to happen next, as messages: the steps take an `Outbox` so they run and test
without Celery; `tasks` sends each through the app."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from celery import Celery

from ..delivery import send_completion

STEP_CHUNK = 20
"""Runs per `batchline.agent_step` message, taken on side by side in one event loop."""


class Outbox(Protocol):
    def steps(self, runs: Sequence[tuple[str, int]]) -> None:
        """Take these runs `(job_id, index)` on (`batchline.agent_step`, a chunk of runs per message)."""

    def flush(self, pool: str, countdown: float) -> None:
        """Flush a pool into a batch job in `countdown` seconds, if it is due by then (`batchline.agent_flush`)."""

    def submit(self, job_id: str) -> None:
        """Submit a batch job made from a pool (`batchline.submit`)."""

    def callback(self, task: str, job_id: str, custom_ids: list[str]) -> None:
        """The application's callback for runs that ended."""

    def complete(self, spec: str, summary: dict[str, Any]) -> None:
        """The application's `on_complete`, with the job's summary."""


class CeleryOutbox:
    """The steps' next messages, through the app running the task."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def steps(self, runs: Sequence[tuple[str, int]]) -> None:
        # A chunk per message: a round is a few milliseconds of work, less than a task's own cost in Celery.
        for start in range(0, len(runs), STEP_CHUNK):
            chunk = [[job_id, index] for job_id, index in runs[start : start + STEP_CHUNK]]
            self.app.send_task("batchline.agent_step", args=(chunk,))

    def flush(self, pool: str, countdown: float) -> None:
        self.app.send_task(
            "batchline.agent_flush", args=(pool,), kwargs={"force": countdown == 0}, countdown=countdown or None
        )

    def submit(self, job_id: str) -> None:
        self.app.send_task("batchline.submit", args=(job_id,))

    def callback(self, task: str, job_id: str, custom_ids: list[str]) -> None:
        self.app.send_task(task, args=(job_id, custom_ids))

    def complete(self, spec: str, summary: dict[str, Any]) -> None:
        send_completion(self.app, spec, summary)

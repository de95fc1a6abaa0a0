"""What a worker-side agent step asks to happen next, as messages: the steps take an `Outbox` so they run and test
without Celery; `tasks` sends each through the app."""

from __future__ import annotations

from typing import Any, Protocol

from celery import Celery

from ..delivery import send_completion


class Outbox(Protocol):
    def step(self, job_id: str, index: int) -> None:
        """Take run `index` of the job on (`batchline.agent_step`)."""

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

    def step(self, job_id: str, index: int) -> None:
        self.app.send_task("batchline.agent_step", args=(job_id, index))

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

"""What a finished job hands to the application: result chunks to a callback task, its summary to `on_complete`.

`on_complete` is a task name or a Celery canvas (a signature, chain or group of the application's own tasks), stored
in the job as JSON, so the pipeline is a canvas an application chains its own tasks onto. Only tasks named in the
workers' `allowed_callbacks` may be called: a job cannot make a worker run an arbitrary task.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from celery import Celery, Signature, signature

_CANVAS_TASKS = frozenset({"celery.chain", "celery.group", "celery.chord", "celery.chunks", "celery.map"})


def completion_spec(on_complete: str | Signature | None) -> str | None:
    """How `on_complete` is kept in the job: a task name as is, a canvas as its JSON."""
    if on_complete is None or isinstance(on_complete, str):
        return on_complete or None
    if isinstance(on_complete, Signature):
        return orjson.dumps(dict(on_complete)).decode()
    raise TypeError(f"on_complete must be a task name or a Celery signature, not {type(on_complete).__name__}.")


def completion_tasks(spec: str | None) -> Iterator[str]:
    """Every task a stored `on_complete` would run (canvas plumbing aside)."""
    if not spec:
        return
    if not spec.startswith("{"):
        yield spec
        return
    yield from _tasks_of(orjson.loads(spec))


def _tasks_of(sig: dict[str, Any]) -> Iterator[str]:
    task = sig.get("task", "")
    if task not in _CANVAS_TASKS:
        yield task
    kwargs = sig.get("kwargs") or {}
    for key in ("tasks", "header", "body"):
        inner = kwargs.get(key)
        for item in inner if isinstance(inner, list) else [inner] if isinstance(inner, dict) else []:
            yield from _tasks_of(item)
    for linked in (sig.get("options") or {}).get("link") or []:
        yield from _tasks_of(linked)


def send_completion(app: Celery, spec: str, summary: dict[str, Any]) -> None:
    """Call `on_complete` with the job's summary as its first argument."""
    if spec.startswith("{"):
        signature(orjson.loads(spec), app=app).apply_async(args=(summary,))
    else:
        app.send_task(spec, args=(summary,))

"""What every public function of the caller's side shares: the app and runtime it sends through (starting the
embedded worker on the embedded default), and its async or sync twin made from one typed signature."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from celery import Celery

from . import worker
from .runtime import Runtime, runtime_for

P = ParamSpec("P")
R = TypeVar("R")


def async_twin(sync: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """The async function of `sync`'s signature that runs it in a thread: the event loop is never blocked on Redis."""

    @functools.wraps(sync)
    async def twin(*args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(sync, *args, **kwargs)

    twin.__name__ = twin.__qualname__ = sync.__name__.removesuffix("_sync")
    twin.__doc__ = f"Async twin of `{sync.__name__}`.\n\n{sync.__doc__ or ''}"
    return twin


def sync_twin(run: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, R]:
    """The blocking function of `run`'s signature, for code without an event loop."""

    @functools.wraps(run)
    def twin(*args: P.args, **kwargs: P.kwargs) -> R:
        return asyncio.run(run(*args, **kwargs))

    twin.__name__ = twin.__qualname__ = f"{run.__name__}_sync"
    twin.__doc__ = f"Sync twin of `{run.__name__}`.\n\n{run.__doc__ or ''}"
    return twin


def caller_runtime() -> tuple[Celery, Runtime]:
    app = worker.current_app()
    runtime = runtime_for(app)
    if runtime.settings.embedded:
        from .embedded import ensure_worker

        ensure_worker(app)
    return app, runtime

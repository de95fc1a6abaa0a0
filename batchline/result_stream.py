"""Streamed reads of a job's results: sync and async iterators whose memory stays flat in the job's size, and a
callback helper that hands a callback task its chunk's results as such an iterator.

`batch_results_sync` builds one list: 50,000 results peak at over 500 MB in the caller. These read and decode
`chunk_size` results per round trip and hold only that chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator
from typing import TypeVar

from pydantic_ai.models import Model

from . import results
from .agents.records import is_agent_job
from .api import BatchRef, _job_id
from .caller import caller_runtime
from .errors import BatchInputError
from .types import BatchResult

R = TypeVar("R")


def batch_result_chunks_sync(
    model_or_batch: Model | BatchRef,
    batch: BatchRef | None = None,
    *,
    custom_ids: Iterable[str] | None = None,
    chunk_size: int = results.READ_CHUNK,
) -> Generator[list[BatchResult]]:
    """The stored results in lists of up to `chunk_size`: in request order (the store's), or those of `custom_ids`
    (any iterable, read as it goes) in their order. A request without a result yet is left out. The job is checked
    at once: a missing job raises `JobNotFound` here, not at the first `next`."""
    _, runtime = caller_runtime()
    job_id = _job_id(model_or_batch, batch)
    if is_agent_job(job_id):
        raise BatchInputError(f"{job_id} is an agent job: read its runs with batchline.agents.results_sync.")
    runtime.store.load_job(job_id)
    return results.result_chunks(runtime, job_id, custom_ids, chunk_size)


def batch_results_iter_sync(
    model_or_batch: Model | BatchRef,
    batch: BatchRef | None = None,
    *,
    custom_ids: Iterable[str] | None = None,
    chunk_size: int = results.READ_CHUNK,
) -> Iterator[BatchResult]:
    """`batch_results_sync` as an iterator: the same `BatchResult`s in the same order, read `chunk_size` at a time,
    so reading a million results takes the memory of one chunk (`batch_result_chunks_sync` gives the chunks)."""
    chunks = batch_result_chunks_sync(model_or_batch, batch, custom_ids=custom_ids, chunk_size=chunk_size)
    return (result for chunk in chunks for result in chunk)


async def batch_results_iter(
    model_or_batch: Model | BatchRef,
    batch: BatchRef | None = None,
    *,
    custom_ids: Iterable[str] | None = None,
    chunk_size: int = results.READ_CHUNK,
) -> AsyncIterator[BatchResult]:
    """`batch_results_iter_sync` for `async for`: each chunk is read and decoded in a thread, so the event loop is
    never blocked on Redis or on decoding."""
    chunks = await asyncio.to_thread(
        batch_result_chunks_sync, model_or_batch, batch, custom_ids=custom_ids, chunk_size=chunk_size
    )
    try:
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
            for result in chunk:
                yield result
    finally:
        chunks.close()


def results_callback(handle: Callable[[str, Iterator[BatchResult]], R]) -> Callable[[str, list[str]], R]:
    """A delivery callback made of `handle(job_id, results)`: the task batchline calls with `(job_id, custom_ids)`
    gets the results of its chunk as `batch_results_iter_sync` streams them. Put it under the task decorator:

        @shared_task(name="myapp.save", acks_late=True)
        @results_callback
        def save(job_id, results):
            for result in results: ...

    The task keeps `handle`'s name, module and doc (Celery names a task from them), not its signature: Celery checks
    a call against `(job_id, custom_ids)`, which is what it is called with."""

    def callback(job_id: str, custom_ids: list[str]) -> R:
        return handle(job_id, batch_results_iter_sync(job_id, custom_ids=custom_ids))

    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(callback, name, getattr(handle, name))
    return callback

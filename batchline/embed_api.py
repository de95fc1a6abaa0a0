"""The embeddings API: `batch_create_embeddings` (submit now, collect later) and `embed_batch` (submit and wait), each
with its `_sync` twin.

Once created, an embedding job is a job like any other: `batch_status`, `batch_wait`, `batch_cancel`, `batch_list`
and the CLI take its id, and `batch_results` gives one `BatchResult` per input with its `embedding` (or its `error`).
Inputs, model and settings are checked by `embeddings` before anything is stored or sent.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from celery import Signature

from . import embed_jobs, jobs, status
from ._gc import gc_paused
from .api import batch_results, batch_wait, cancel_quietly, created
from .caller import async_twin, caller_runtime, sync_twin
from .delivery import check_tasks, completion_spec
from .embeddings import BatchEmbeddings, EmbeddingRequest, check_embedding_model, check_inputs, check_settings, encode
from .types import Batch
from .validation import check_numbers

if TYPE_CHECKING:
    from pydantic_ai.embeddings import EmbeddingSettings
    from pydantic_ai.embeddings.result import EmbedInputType

Inputs = Sequence[str | tuple[str, str] | EmbeddingRequest]
"""Texts (each's custom_id is its position: `"0"`, `"1"`, ...), `(custom_id, text)` pairs or `EmbeddingRequest`s."""


def batch_create_embeddings_sync(
    model: str,
    inputs: Inputs,
    *,
    input_type: EmbedInputType = "document",
    settings: EmbeddingSettings | None = None,
    poll_interval: float = 60.0,
    timeout: float | None = None,
    callback: str | None = None,
    on_complete: str | Signature | None = None,
    chunk_size: int = 500,
    max_resubmissions: int = 2,
    submit_wait: float = 30.0,
) -> Batch:
    """Store a job of embedding inputs and queue it; wait up to `submit_wait` seconds for the provider to accept it.

    `model` is an embedding model as pydantic-ai's `Embedder` names it (`openai:text-embedding-3-small`,
    `google:gemini-embedding-001`); `input_type` and `settings` (`dimensions`; for Gemini `google_task_type`,
    `google_title`, `google_task`) shape the vectors as pydantic-ai's embedding models do. The other arguments are
    `batch_create`'s. Nothing is stored or sent when an input, the model or a setting is invalid.
    """
    numbers = check_numbers(
        poll_interval=poll_interval,
        timeout=timeout,
        chunk_size=chunk_size,
        max_resubmissions=max_resubmissions,
        submit_wait=submit_wait,
    )
    embedding_model = check_embedding_model(model)
    requests = check_inputs(inputs)
    config = check_settings(embedding_model, input_type, settings)
    with gc_paused():  # many requests, built at once (see `_gc`)
        encoded = encode(embedding_model, requests, input_type, config)
        app, runtime = caller_runtime()
        completion = completion_spec(on_complete)
        check_tasks(callback, completion, runtime.settings.allowed_callbacks)  # deliver checks it again
        record = embed_jobs.new_record(embedding_model, len(requests), numbers, callback, completion)
        job_id, parts = embed_jobs.store_job(runtime, record, encoded)
    jobs.send_submit(app, runtime, job_id, parts)
    return status.batch_once_settled(runtime, job_id, numbers.submit_wait)


batch_create_embeddings = async_twin(batch_create_embeddings_sync)


async def embed_batch(
    model: str,
    inputs: Inputs,
    *,
    input_type: EmbedInputType = "document",
    settings: EmbeddingSettings | None = None,
    poll_interval: float = 60.0,
    timeout: float | None = None,
    max_resubmissions: int = 2,
) -> BatchEmbeddings:
    """Embed the inputs as one job and wait: the final `Batch` (usage, cost) and one result per input, in input order.

    Cancelling the awaiting task, or reaching `timeout` (which then raises `TimeoutError`), cancels the job's
    provider batches, as `model_request_batch` does.
    """
    create = functools.partial(
        batch_create_embeddings_sync,
        model,
        inputs,
        input_type=input_type,
        settings=settings,
        poll_interval=poll_interval,
        timeout=timeout,
        max_resubmissions=max_resubmissions,
        submit_wait=0,
    )
    batch = await created(create)
    try:
        async with asyncio.timeout(timeout):
            final = await batch_wait(batch.id)
    except BaseException:
        # Cancelled by the caller, timed out, or interrupted: the provider batches must not run on unpaid-for.
        await cancel_quietly(batch.id)
        raise
    return BatchEmbeddings(final, await batch_results(batch.id))


embed_batch_sync = sync_twin(embed_batch)

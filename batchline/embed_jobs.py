"""A job of embedding inputs, on the caller's side: its record and requests written to the store as any job's are
(the workers run it as they run every job), and its stored answers read back as vectors.

The job's record says `kind = "embedding"`; its parts' groups send them to the provider's embedding endpoint
(OpenAI: the `/v1/embeddings` group raw lines get; Gemini: `EMBED_GROUP`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import orjson

from . import jobs
from ._gc import gc_paused
from .embeddings import EMBEDDING, EmbeddingModel, embedding_of
from .providers import Encoded, get_provider
from .providers.gemini.wire import RPC_CODES
from .records import JobRecord
from .runtime import Runtime
from .types import BatchError, BatchResult
from .validation import JobNumbers

READ_CHUNK = 1000
"""Results read from the store per round trip."""


def new_record(
    model: EmbeddingModel, total: int, numbers: JobNumbers, callback: str | None, on_complete: str | None
) -> JobRecord:
    """The record of an embedding job created now: what it runs with, and when its timeout (if any) passes."""
    now = time.time()
    return JobRecord(
        model=model.model,
        total=total,
        created_at=now,
        poll_interval=numbers.poll_interval,
        deadline=now + numbers.timeout if numbers.timeout else 0,
        chunk_size=numbers.chunk_size,
        max_resubmissions=numbers.max_resubmissions,
        callback=callback or None,
        on_complete=on_complete or None,
        kind=EMBEDDING,
    )


def store_job(runtime: Runtime, record: JobRecord, encoded: list[Encoded]) -> tuple[str, int]:
    """Plan the job's provider batches (within the provider's limits) and write it all to the store in one
    transaction; answer its new id and its number of parts."""
    job_id = f"batch_{uuid.uuid4().hex}"
    parts = jobs.plan_parts(get_provider(record.model), encoded)
    runtime.store.create_job(job_id, record, ((enc.custom_id, enc.body, None) for enc in encoded), parts)
    return job_id, len(parts)


def read_embeddings(
    runtime: Runtime, job_id: str, job: JobRecord, custom_ids: Sequence[str] | None = None
) -> list[BatchResult]:
    """The embedding job's results stored so far, in input order (or those of `custom_ids`): each a vector or an
    error."""
    store = runtime.store
    provider = get_provider(job.model).name
    ids = list(custom_ids) if custom_ids is not None else list(store.request_ids(job_id))
    out: list[BatchResult] = []
    with gc_paused():  # many vectors, read at once (see `_gc`)
        for start in range(0, len(ids), READ_CHUNK):
            chunk = ids[start : start + READ_CHUNK]
            for custom_id, result in zip(chunk, store.results(job_id, chunk), strict=True):
                if result is not None:
                    out.append(embedding_result(provider, custom_id, result.status, result.body))
    return out


def embedding_result(provider: str, custom_id: str, status: str, body: bytes) -> BatchResult:
    """One stored result as a `BatchResult` with its vector, or with the provider's error."""
    if status == "succeeded":
        vector = embedding_of(provider, body)
        if vector is not None:
            return BatchResult(custom_id, embedding=vector)
        return BatchResult(custom_id, error=BatchError("no_embedding", "The provider's answer holds no embedding."))
    if status in ("expired", "canceled"):
        verb = "expired" if status == "expired" else "was cancelled"
        return BatchResult(custom_id, error=BatchError(status, f"The batch {verb} before this input was embedded."))
    return BatchResult(custom_id, error=error_of(body))


def error_of(body: bytes) -> BatchError:
    """The provider's code and message from a stored error body: OpenAI's `{status_code, body: {error}}` (or a failed
    batch's `{body: {errors}}`), Gemini's `google.rpc.Status` (its number named: `INTERNAL`)."""
    try:
        stored = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        stored = {}
    inner = stored.get("body", stored) if isinstance(stored, dict) else {}
    if isinstance(inner, dict):
        errors = inner.get("errors")
        inner = errors[0] if isinstance(errors, list) and errors else inner.get("error", inner)
    if isinstance(inner, dict) and (inner.get("message") or inner.get("code")):
        code = inner.get("code") or inner.get("type") or inner.get("status") or stored.get("status_code")
        if isinstance(code, int) and "status_code" not in stored:
            code = RPC_CODES.get(code, code)
        return BatchError(str(code or "error"), str(inner.get("message") or ""))
    return BatchError("error", "The provider gave no reason.")

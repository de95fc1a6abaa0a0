"""A job's stored results, read back on the caller's side: decoded into `BatchResult`s, or exported as the
provider's own lines."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import IO, Any

import orjson
from pydantic_ai.exceptions import ModelAPIError, ModelHTTPError, UserError

from ._chunks import chunks
from ._gc import gc_paused
from .cache import CacheStore
from .codec import PARAMS, decode_request
from .embed_jobs import read_embeddings
from .embeddings import EMBEDDING, embedding_of
from .providers import get_provider
from .runtime import Runtime
from .types import BatchError, BatchResult

READ_CHUNK = 1000
"""Results read from the store per round trip."""


def read_results(runtime: Runtime, job_id: str, custom_ids: Sequence[str] | None = None) -> list[BatchResult]:
    """The results stored so far, in request order (or those of `custom_ids`), decoded."""
    with gc_paused():  # many responses, decoded at once (see `_gc`)
        return [result for chunk in result_chunks(runtime, job_id, custom_ids) for result in chunk]


def iter_results(
    runtime: Runtime, job_id: str, custom_ids: Iterable[str] | None = None, chunk_size: int = READ_CHUNK
) -> Iterator[BatchResult]:
    """`result_chunks`, one result at a time."""
    for chunk in result_chunks(runtime, job_id, custom_ids, chunk_size):
        yield from chunk


def result_chunks(
    runtime: Runtime, job_id: str, custom_ids: Iterable[str] | None = None, chunk_size: int = READ_CHUNK
) -> Generator[list[BatchResult]]:
    """The results stored so far, decoded a chunk at a time: in request order (the store's), or those of `custom_ids`
    in their order, taken from the iterable as they are needed. Only one chunk's ids, stored values and results are
    held at a time, so memory stays flat however many results the job has; the job is looked up before the first
    chunk, so a missing one raises `JobNotFound` at the first `next`."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
    store = runtime.store
    job = store.load_job(job_id)
    ids = store.request_ids(job_id) if custom_ids is None else iter(custom_ids)
    if job.kind == EMBEDDING:  # vectors, not model responses: no codec reads them
        for chunk in chunks(ids, chunk_size):
            yield read_embeddings(runtime, job_id, job, chunk)
        return
    codec = get_provider(job.model)
    params = PARAMS.validate_json(job.params)
    settings = orjson.loads(job.settings) or None
    for chunk in chunks(ids, chunk_size):
        out: list[BatchResult] = []
        with gc_paused():  # a chunk of responses, decoded at once (see `_gc`)
            stored = store.results(job_id, chunk)
            options = store.request_options(job_id, chunk)
            shared = CacheStore(store).cached_flags(job_id, chunk) if job.cache else [False] * len(chunk)
            for custom_id, result, own, cached in zip(chunk, stored, options, shared, strict=True):
                if result is None:
                    continue
                if result.status in ("expired", "canceled"):
                    verb = "expired" if result.status == "expired" else "was cancelled"
                    message = f"The batch {verb} before the model ran this request"
                    why = f": the job was cancelled as {job.cancel_reason}." if job.cancel_reason else "."
                    error = BatchError(result.status, message + why)
                    out.append(BatchResult(custom_id, error=error, cached=cached))
                    continue
                request = decode_request(custom_id, params, settings, own)
                try:
                    out.append(BatchResult(custom_id, response=codec.decode(result, request), cached=cached))
                except ModelAPIError as exc:
                    out.append(BatchResult(custom_id, error=error_of(exc), cached=cached))
                except UserError as exc:  # a raw-mode result that is no model response (embeddings, moderations)
                    vector = embedding_of(codec.name, result.body)
                    found = BatchError("not_a_model_response", str(exc)) if vector is None else None
                    out.append(BatchResult(custom_id, error=found, embedding=vector, cached=cached))
        yield out


def export_results(runtime: Runtime, job_id: str, out: IO[bytes]) -> int:
    """Write the stored results, in request order, as lines of the provider's own results file; answer how many."""
    store = runtime.store
    codec = get_provider(store.load_job(job_id).model)
    written = 0
    for ids in chunks(store.request_ids(job_id), READ_CHUNK):  # ids read as they go: memory flat in the job's size
        for result in store.results(job_id, ids):
            if result is not None:
                out.write(codec.export_line(result.custom_id, result.status, result.body) + b"\n")
                written += 1
    return written


def error_of(exc: ModelAPIError) -> BatchError:
    """The provider's error code and message, from the error a codec raised decoding a result."""
    if isinstance(exc, ModelHTTPError):
        body = exc.body if isinstance(exc.body, dict) else _json_object(exc.body)  # Mistral's error keeps its text
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("errors"), list) and inner["errors"]:
            inner = inner["errors"][0]  # an OpenAI batch that failed validation: its first error stands for all
        if isinstance(inner, dict):
            code = inner.get("code") or inner.get("type") or inner.get("status")
            message = inner.get("message")
            if code or message:
                return BatchError(str(code or exc.status_code), str(message or exc.message))
        return BatchError(str(exc.status_code), exc.message)
    return BatchError("error", exc.message)


def _json_object(text: object) -> dict[str, Any]:
    """An error body kept as JSON text (pydantic-ai's Mistral errors), parsed; {} when it is not an object."""
    if not isinstance(text, str | bytes):
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}

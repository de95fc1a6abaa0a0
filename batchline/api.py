"""The Python API: `model_request_batch`, `batch_create`, `batch_status`, `batch_results`, `batch_cancel`.

Each async function has a `_sync` twin doing the same work. The API only talks to the store and the broker: the
workers talk to the providers, with the keys in their own environment.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import IO, Any

import orjson
from celery import Celery, Signature
from kombu.exceptions import OperationalError
from pydantic_ai.exceptions import ModelAPIError, ModelHTTPError, UserError
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.batch import BatchRequest
from pydantic_ai.settings import ModelSettings
from redis.exceptions import RedisError

from . import worker
from ._gc import gc_paused
from .codec import PARAMS, RawBatchRequest, decode_request, request_model, to_batch_requests
from .delivery import check_tasks, completion_spec
from .errors import BatchInputError
from .pipeline import load_job, request_cancel
from .providers import Encoded, Provider, get_provider
from .records import PartState
from .runtime import Runtime, runtime_for
from .types import Batch, BatchError, BatchResult, BatchStatus, ProviderBatch
from .validation import check_model, check_numbers

__all__ = [
    "batch_cancel",
    "batch_cancel_sync",
    "batch_create",
    "batch_create_sync",
    "batch_export_sync",
    "batch_list",
    "batch_list_sync",
    "batch_results",
    "batch_results_sync",
    "batch_status",
    "batch_status_sync",
    "batch_wait",
    "batch_wait_sync",
    "model_request_batch",
    "model_request_batch_sync",
]

BatchRef = Batch | str
"""A `Batch` handle or its id."""


def _runtime() -> tuple[Celery, Runtime]:
    app = worker.current_app()
    runtime = runtime_for(app)
    if runtime.settings.embedded:
        from .embedded import ensure_worker

        ensure_worker(app)
    return app, runtime


def _model_string(model: Model | str) -> str:
    if isinstance(model, Model):
        return f"{model.system}:{model.model_name}"
    return model


# -- create ---------------------------------------------------------------------------------------------------------
def batch_create_sync(
    model: Model | str,
    requests: Sequence[Any],
    *,
    model_request_parameters: ModelRequestParameters | None = None,
    model_settings: ModelSettings | None = None,
    poll_interval: float = 60.0,
    timeout: float | None = None,
    callback: str | None = None,
    on_complete: str | Signature | None = None,
    chunk_size: int = 500,
    max_resubmissions: int = 2,
    submit_wait: float = 30.0,
) -> Batch:
    """Store a job and queue it; wait up to `submit_wait` seconds for the provider to accept it.

    Nothing is stored or sent when a request is invalid. `callback` and `on_complete` name Celery tasks the workers
    allow (`allowed_callbacks`): `callback(job_id, custom_ids)` runs once per chunk of `chunk_size` results and
    `on_complete(summary)` once; `on_complete` may also be a Celery signature or canvas (a chain of your own tasks),
    which receives the summary as its first argument. Requests that expire or meet a transient error are sent again
    in new provider batches, up to `max_resubmissions` times. With `submit_wait=0` it returns at once, as a web view
    wants.
    """
    model = check_model(_model_string(model))
    numbers = check_numbers(  # finite, in range, whole where they count: see `validation`
        poll_interval=poll_interval,
        timeout=timeout,
        chunk_size=chunk_size,
        max_resubmissions=max_resubmissions,
        submit_wait=submit_wait,
    )
    poll_interval, timeout, chunk_size = numbers.poll_interval, numbers.timeout, numbers.chunk_size
    max_resubmissions, submit_wait = numbers.max_resubmissions, numbers.submit_wait
    codec = get_provider(model)  # an unknown prefix raises NotImplementedError here, before anything is stored
    with gc_paused():  # many requests, built at once (see `_gc`)
        checked = to_batch_requests(requests, model_request_parameters, model_settings)
        encoded = _encode(codec, [request for request, _ in checked])
        app, runtime = _runtime()
        completion = completion_spec(on_complete)
        check_tasks(callback, completion, runtime.settings.allowed_callbacks)  # the deliver step checks it again
        job_id = f"batch_{uuid.uuid4().hex}"
        now = time.time()
        fields: dict[str, str | int | float] = {
            "model": model,
            "total": len(checked),
            "created_at": now,
            "poll_interval": poll_interval,
            "deadline": now + timeout if timeout else 0,
            "chunk_size": chunk_size,
            "max_resubmissions": max_resubmissions,
            "params": PARAMS.dump_json(model_request_parameters or ModelRequestParameters()).decode(),
            "settings": orjson.dumps(dict(model_settings or {})).decode(),
        }
        if callback:
            fields["callback"] = callback
        if completion:
            fields["on_complete"] = completion
        if any(isinstance(request, RawBatchRequest) for request, _ in checked):
            fields["raw"] = 1
        rows = ((enc.custom_id, enc.body, own) for enc, (_, own) in zip(encoded, checked, strict=True))
        parts = plan_parts(codec, encoded)
        runtime.store.create_job(job_id, fields, rows, parts)
    _send_submit(app, runtime, job_id, len(parts))
    deadline = time.monotonic() + submit_wait
    delay = 0.005
    while time.monotonic() < deadline and not _settled(runtime, job_id):
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    return _status(runtime, job_id)


def _send_submit(app: Celery, runtime: Runtime, job_id: str, parts: int) -> None:
    """Queue the job's submit step; if the broker refuses it, remove the job, so none sits pending with no submit."""
    try:
        app.send_task("batchline.submit", args=(job_id,))
    except OperationalError as error:
        store = runtime.store
        try:
            pipe = store.redis.pipeline(transaction=True)
            pipe.delete(*store.job_keys(job_id, parts))
            pipe.zrem(f"{store.prefix}jobs", job_id)
            pipe.zrem(store.pending_key(), job_id)  # the sweep has nothing to re-send
            pipe.execute()
        except RedisError as lost:
            raise OperationalError(
                f"The broker did not take the job's submit message ({error}), and job {job_id} could not be removed "
                f"from the store ({lost}): it stays pending until its TTL ends; create the job again."
            ) from error
        raise OperationalError(
            f"The broker did not take the job's submit message ({error}); the job was removed and nothing was sent "
            "to the provider. Create it again once the broker is reachable."
        ) from error


async def batch_create(model: Model | str, requests: Sequence[Any], **options: Any) -> Batch:
    """Async twin of `batch_create_sync`."""
    return await asyncio.to_thread(batch_create_sync, model, requests, **options)


def _encode(codec: Provider, requests: list[BatchRequest]) -> list[Encoded]:
    """Provider-native bodies: pydantic-ai requests through the adapter's codec; raw ones checked, kept as is."""
    typed = [r for r in requests if not isinstance(r, RawBatchRequest)]
    if not getattr(codec, "request_models", False) and any(request_model(r) for r in typed):
        raise BatchInputError(f"{codec.name} batches run the job's model; a request cannot name its own model.")
    try:
        encoded = iter(codec.encode_many(typed))
    except BatchInputError:
        raise
    except (UserError, ValueError, TypeError) as error:
        raise BatchInputError(f"{codec.name} cannot batch these requests: {error}") from None
    return [codec.encode_raw(r.raw) if isinstance(r, RawBatchRequest) else next(encoded) for r in requests]


def plan_parts(provider: Provider, encoded: Sequence[Encoded]) -> list[tuple[str, list[str]]]:
    """Split requests into provider batches: one group (model) each, within the request and byte limits."""
    groups: dict[str, list[Encoded]] = {}
    for enc in encoded:
        groups.setdefault(enc.group, []).append(enc)
    parts: list[tuple[str, list[str]]] = []
    for group, members in groups.items():
        current: list[str] = []
        size = 0
        for enc in members:
            cost = provider.request_size(enc)
            if cost > provider.max_bytes:
                raise BatchInputError(
                    f"request {enc.custom_id!r} takes {cost:,} bytes, more than a {provider.name} batch holds "
                    f"({provider.max_bytes:,})."
                )
            if current and (len(current) == provider.max_requests or size + cost > provider.max_bytes):
                parts.append((group, current))
                current, size = [], 0
            current.append(enc.custom_id)
            size += cost
        parts.append((group, current))
    return parts


def _settled(runtime: Runtime, job_id: str) -> bool:
    """Every part is at the provider, and any part the provider ended at once has its results stored."""
    job = runtime.store.job(job_id)
    if BatchStatus(job["state"]).is_final:
        return True
    if job["state"] == BatchStatus.PENDING:
        return False  # the submit step has not finished
    parts = runtime.store.parts(job_id, int(job["parts"]))
    if all(part.get("state") == PartState.STORED for part in parts):
        return False  # the job ends just after its last part is stored (and its files cleaned up): wait for that
    return all(
        part.get("state") == PartState.STORED
        or (part.get("state") == PartState.SUBMITTED and part.get("provider_state") in ("running", "cancelling"))
        for part in parts
    )


# -- status ---------------------------------------------------------------------------------------------------------
def _job_id(model_or_batch: Model | BatchRef, batch: BatchRef | None) -> str:
    """`f(batch)` and `f(model, batch)` both work: pydantic-ai's examples pass the model first, a saved id is enough."""
    ref = model_or_batch if batch is None else batch
    if isinstance(ref, Batch):
        return ref.id
    if isinstance(ref, str) and ref:
        return ref
    raise TypeError(f"Expected a Batch or a batch id, not {type(ref).__name__}.")


def batch_status_sync(model_or_batch: Model | BatchRef, batch: BatchRef | None = None) -> Batch:
    """The job's current state, read from the store (the workers keep it current)."""
    _, runtime = _runtime()
    return _status(runtime, _job_id(model_or_batch, batch))


async def batch_status(model_or_batch: Model | BatchRef, batch: BatchRef | None = None) -> Batch:
    return await asyncio.to_thread(batch_status_sync, model_or_batch, batch)


def _status(runtime: Runtime, job_id: str) -> Batch:
    store = runtime.store
    job = load_job(runtime, job_id)
    parts = store.parts(job_id, int(job["parts"]))
    completed = job.get("completed_at")
    return Batch(
        id=job_id,
        model=job["model"],
        status=BatchStatus(job["state"]),
        created_at=datetime.fromtimestamp(float(job["created_at"]), UTC),
        completed_at=datetime.fromtimestamp(float(completed), UTC) if completed else None,
        request_count=int(job["total"]),
        completed_count=int(job.get("succeeded", 0)),
        failed_count=int(job.get("failed", 0)),
        anomaly_count=int(job.get("anomalies", 0)),
        provider_batches=[
            ProviderBatch(
                part=n,
                id=part.get("provider_id") or None,
                status=part.get("provider_status") or part.get("state", ""),
                request_count=int(part.get("total", 0)),
                completed_count=int(part.get("completed", 0)),
                failed_count=int(part.get("failed", 0)),
                error=part.get("error") or None,
            )
            for n, part in enumerate(parts)
        ],
    )


def batch_list_sync(limit: int = 20) -> list[Batch]:
    """The most recent jobs in the store, newest first."""
    _, runtime = _runtime()
    return [_status(runtime, job_id) for job_id in runtime.store.job_ids(limit) if runtime.store.job(job_id)]


async def batch_list(limit: int = 20) -> list[Batch]:
    return await asyncio.to_thread(batch_list_sync, limit)


# -- results --------------------------------------------------------------------------------------------------------
def batch_results_sync(
    model_or_batch: Model | BatchRef, batch: BatchRef | None = None, *, custom_ids: Sequence[str] | None = None
) -> list[BatchResult]:
    """The results stored so far, in request order (all of them once the job is complete), decoded.

    `custom_ids` picks some (a callback task receives the ids of its chunk).
    """
    _, runtime = _runtime()
    job_id = _job_id(model_or_batch, batch)
    store = runtime.store
    job = load_job(runtime, job_id)
    codec = get_provider(job["model"])
    params = PARAMS.validate_json(job["params"])
    settings = orjson.loads(job["settings"]) or None
    ids = list(custom_ids) if custom_ids is not None else list(store.request_ids(job_id))
    out: list[BatchResult] = []
    with gc_paused():  # many responses, decoded at once (see `_gc`)
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            stored = store.results(job_id, chunk)
            options = store.request_options(job_id, chunk)
            for custom_id, result, own in zip(chunk, stored, options, strict=True):
                if result is None:
                    continue
                if result.status in ("expired", "canceled"):
                    verb = "expired" if result.status == "expired" else "was cancelled"
                    error = BatchError(result.status, f"The batch {verb} before the model ran this request.")
                    out.append(BatchResult(custom_id, error=error))
                    continue
                request = decode_request(custom_id, params, settings, own)
                try:
                    out.append(BatchResult(custom_id, response=codec.decode(result, request)))
                except ModelAPIError as exc:
                    out.append(BatchResult(custom_id, error=_error_of(exc)))
                except UserError as exc:  # a raw-mode result that is no model response (embeddings, moderations)
                    out.append(BatchResult(custom_id, error=BatchError("not_a_model_response", str(exc))))
    return out


def batch_export_sync(model_or_batch: Model | BatchRef, out: IO[bytes], batch: BatchRef | None = None) -> int:
    """Write the stored results, in request order, as lines of the provider's own results file; answer how many.

    This is raw mode's way out: nothing is decoded, so any endpoint's results (embeddings included) come back as the
    provider wrote them.
    """
    _, runtime = _runtime()
    job_id = _job_id(model_or_batch, batch)
    store = runtime.store
    job = load_job(runtime, job_id)
    codec = get_provider(job["model"])
    written = 0
    ids = list(store.request_ids(job_id))
    for start in range(0, len(ids), 1000):
        for result in store.results(job_id, ids[start : start + 1000]):
            if result is not None:
                out.write(codec.export_line(result.custom_id, result.status, result.body) + b"\n")
                written += 1
    return written


async def batch_results(
    model_or_batch: Model | BatchRef, batch: BatchRef | None = None, *, custom_ids: Sequence[str] | None = None
) -> list[BatchResult]:
    return await asyncio.to_thread(batch_results_sync, model_or_batch, batch, custom_ids=custom_ids)


def _error_of(exc: ModelAPIError) -> BatchError:
    if isinstance(exc, ModelHTTPError):
        body = exc.body if isinstance(exc.body, dict) else {}
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


# -- cancel ---------------------------------------------------------------------------------------------------------
def batch_cancel_sync(model_or_batch: Model | BatchRef, batch: BatchRef | None = None) -> Batch:
    """Cancel the job: its provider batches that have not ended are cancelled by a worker. Kept results stay."""
    app, runtime = _runtime()
    job_id = _job_id(model_or_batch, batch)
    if request_cancel(runtime, job_id):
        app.send_task("batchline.cancel", args=(job_id,))
    return _status(runtime, job_id)


async def batch_cancel(model_or_batch: Model | BatchRef, batch: BatchRef | None = None) -> Batch:
    return await asyncio.to_thread(batch_cancel_sync, model_or_batch, batch)


# -- all in one -----------------------------------------------------------------------------------------------------
async def model_request_batch(
    model: Model | str,
    requests: Sequence[Any],
    *,
    model_request_parameters: ModelRequestParameters | None = None,
    model_settings: ModelSettings | None = None,
    poll_interval: float = 60.0,
    timeout: float | None = None,
    max_resubmissions: int = 2,
) -> list[BatchResult]:
    """Run the requests as one job and wait: one `BatchResult` per request, in request order.

    Cancelling the awaiting task, or reaching `timeout` (which then raises `TimeoutError`), cancels the job's
    provider batches.
    """
    batch = await batch_create(
        model,
        requests,
        model_request_parameters=model_request_parameters,
        model_settings=model_settings,
        poll_interval=poll_interval,
        timeout=timeout,
        max_resubmissions=max_resubmissions,
        submit_wait=0,
    )
    try:
        async with asyncio.timeout(timeout):
            await batch_wait(batch.id)
    except BaseException:
        # Cancelled by the caller, timed out, or interrupted: the provider batches must not run on unpaid-for.
        await asyncio.shield(batch_cancel(batch.id))
        raise
    return await batch_results(batch.id)


def model_request_batch_sync(model: Model | str, requests: Sequence[Any], **options: Any) -> list[BatchResult]:
    return asyncio.run(model_request_batch(model, requests, **options))


async def batch_wait(model_or_batch: Model | BatchRef, batch: BatchRef | None = None) -> Batch:
    """Wait until the job is complete and return its final state.

    It reads the store, which is cheap: the workers do the provider polling. Wrap it in `asyncio.timeout` to bound it.
    """
    job_id = _job_id(model_or_batch, batch)
    delay = 0.01
    while True:
        state = await batch_status(job_id)
        if state.is_complete:
            return state
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def batch_wait_sync(model_or_batch: Model | BatchRef, batch: BatchRef | None = None) -> Batch:
    return asyncio.run(batch_wait(model_or_batch, batch))

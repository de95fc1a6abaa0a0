"""A new job, as the caller's side builds it: its requests encoded for the provider, planned into provider batches,
its record written to the store, and its submit step queued."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import orjson
from celery import Celery, Signature
from kombu.exceptions import OperationalError
from pydantic_ai.exceptions import UserError
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.batch import BatchRequest
from pydantic_ai.settings import ModelSettings
from redis.exceptions import RedisError

from .cache import CacheStore, plan_requests
from .codec import PARAMS, RawBatchRequest, request_model
from .errors import BatchInputError
from .providers import Encoded, Provider
from .providers.endpoints import Endpoint
from .records import JobRecord
from .runtime import Runtime
from .validation import JobNumbers


@dataclass(frozen=True)
class JobOptions:
    """`batch_create`'s options that are not numbers: the job's defaults for its requests, and its tasks."""

    model_request_parameters: ModelRequestParameters | None = None
    model_settings: ModelSettings | None = None
    callback: str | None = None
    on_complete: str | Signature | None = None
    cache: bool = False
    """Answer from the response cache, send identical requests once (see `batchline.cache`)."""


@dataclass(frozen=True)
class JobLimits:
    """What a job may carry besides `batch_create`'s own arguments (`batchline.direct` sets them)."""

    max_requests: int = 0
    """The most requests per provider batch; 0 for the provider's limit."""
    max_poll_interval: float = 0.0
    """The cap on this job's poll interval; 0 for the workers' own."""
    endpoint: Endpoint | None = None
    """A `Model` instance's base URL and non-secret headers; None for the workers' configured endpoint."""
    max_cost: Decimal | None = None
    """The job's budget in USD, checked against its estimate at create and its cost while it runs; None for none."""


Checked = list[tuple[BatchRequest, bytes | None]]
"""The requests as `to_batch_requests` checked them: each with its own options to store, or None."""


def encode(codec: Provider, requests: list[BatchRequest]) -> list[Encoded]:
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


def plan_parts(provider: Provider, encoded: Sequence[Encoded], max_requests: int = 0) -> list[tuple[str, list[str]]]:
    """Split requests into provider batches: one group (model) each, within the request and byte limits (and the
    job's own `max_requests`, which the provider's limit caps)."""
    limit = min(max_requests, provider.max_requests) if max_requests else provider.max_requests
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
            if current and (len(current) == limit or size + cost > provider.max_bytes):
                parts.append((group, current))
                current, size = [], 0
            current.append(enc.custom_id)
            size += cost
        parts.append((group, current))
    return parts


def new_record(
    model: str,
    checked: Checked,
    numbers: JobNumbers,
    model_request_parameters: ModelRequestParameters | None,
    model_settings: ModelSettings | None,
    callback: str | None,
    on_complete: str | None,
    limits: JobLimits | None = None,
) -> JobRecord:
    """The record of a job created now: what it runs with, and when its timeout (if any) passes."""
    now = time.time()
    limits = limits or JobLimits()
    return JobRecord(
        model=model,
        total=len(checked),
        created_at=now,
        poll_interval=numbers.poll_interval,
        deadline=now + numbers.timeout if numbers.timeout else 0,
        chunk_size=numbers.chunk_size,
        max_resubmissions=numbers.max_resubmissions,
        params=PARAMS.dump_json(model_request_parameters or ModelRequestParameters()).decode(),
        settings=orjson.dumps(dict(model_settings or {})).decode(),
        callback=callback or None,
        on_complete=on_complete or None,
        raw=any(isinstance(request, RawBatchRequest) for request, _ in checked),
        max_requests=limits.max_requests,
        max_poll_interval=limits.max_poll_interval,
        endpoint=limits.endpoint.to_json() if limits.endpoint is not None else "",
        max_cost=limits.max_cost,
    )


def store_job(
    runtime: Runtime, codec: Provider, record: JobRecord, checked: Checked, encoded: list[Encoded], cache: bool = False
) -> tuple[str, int]:
    """Plan the job's provider batches and write it all to the store; answer its new id and its number of parts.

    With `cache`, only the first of identical requests goes into a part; the others get its answer."""
    job_id = f"batch_{uuid.uuid4().hex}"
    rows = ((enc.custom_id, enc.body, own) for enc, (_, own) in zip(encoded, checked, strict=True))
    if not cache:
        parts = plan_parts(codec, encoded, record.max_requests)
        runtime.store.create_job(job_id, record, rows, parts)
        return job_id, len(parts)
    plan = plan_requests(codec, record.model, record.endpoint, encoded)
    parts = plan_parts(codec, plan.leaders, record.max_requests)
    settings = runtime.settings
    record = dataclasses.replace(record, cache=settings.cache_key_prefix, cache_ttl=settings.cache_ttl_seconds)
    cache_store = CacheStore(runtime.store)
    cache_store.write_plan(job_id, plan)  # first: a job in the store always has its plan
    try:
        runtime.store.create_job(job_id, record, rows, parts)
    except BaseException:
        cache_store.forget_plan(job_id)
        raise
    return job_id, len(parts)


def send_submit(app: Celery, runtime: Runtime, job_id: str, parts: int) -> None:
    """Queue the job's submit step; if the broker refuses it, remove the job, so none sits pending with no submit."""
    try:
        app.send_task("batchline.submit", args=(job_id,))
    except OperationalError as error:
        try:
            runtime.store.delete_job(job_id, parts)
        except RedisError as lost:
            raise OperationalError(
                f"The broker did not take the job's submit message ({error}), and job {job_id} could not be removed "
                f"from the store ({lost}): it stays pending until its TTL ends; create the job again."
            ) from error
        raise OperationalError(
            f"The broker did not take the job's submit message ({error}); the job was removed and nothing was sent "
            "to the provider. Create it again once the broker is reachable."
        ) from error

"""The Python API: `model_request_batch`, `batch_create`, `batch_status`, `batch_results`, `batch_cancel`.

Each async function has a `_sync` twin doing the same work. The API only talks to the store and the broker: the
workers talk to the providers, with the keys in their own environment. The work itself is done by `jobs` (build, plan
and queue a job), `status` (a job as a `Batch`) and `results` (decode or export what is stored).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any

from celery import Signature
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.settings import ModelSettings

from . import jobs, results, status, telemetry, worker
from ._gc import gc_paused
from .agents.records import is_agent_job
from .caller import async_twin, caller_runtime, sync_twin
from .codec import to_batch_requests
from .delivery import check_tasks, completion_spec
from .errors import BatchInputError, JobNotFound
from .estimate import CostEstimate, check_max_cost, estimate, refuse_over_budget
from .model_forms import ModelForm, resolve_model
from .pipeline import request_cancel
from .providers import get_provider
from .providers.endpoints import untrusted
from .runtime import runtime_for
from .types import Batch, BatchResult
from .validation import JobNumbers, check_model, check_numbers

if TYPE_CHECKING:
    from pydantic_ai.models.instrumented import InstrumentationSettings

BatchRef = Batch | str
"""A `Batch` handle or its id."""


# -- create ---------------------------------------------------------------------------------------------------------
def _instrument_default() -> bool:
    """`instrument=None`: the process's `BATCHLINE_INSTRUMENT`."""
    return runtime_for(worker.current_app()).settings.instrument


@telemetry.traced_create(_instrument_default)
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
    instrument: bool | InstrumentationSettings | None = None,
    max_cost: float | Decimal | None = None,
    cache: bool = False,
) -> Batch:
    """Store a job and queue it; wait up to `submit_wait` seconds for the provider to accept it.

    Nothing is stored or sent when a request is invalid. `callback` and `on_complete` name Celery tasks the workers
    allow (`allowed_callbacks`): `callback(job_id, custom_ids)` runs once per chunk of `chunk_size` results and
    `on_complete(summary)` once; `on_complete` may also be a Celery signature or canvas (a chain of your own tasks),
    which receives the summary as its first argument. Requests that expire or meet a transient error are sent again
    in new provider batches, up to `max_resubmissions` times. With `submit_wait=0` it returns at once, as a web view
    wants. `instrument` traces the job with OpenTelemetry (see README's "Tracing"); None follows
    `BATCHLINE_INSTRUMENT`. `max_cost` is a budget in USD at batch prices: a job whose estimated cost cannot stay
    within it is refused here, and once its cost passes it while it runs, what has not run yet is cancelled. With
    `cache=True` a request an identical one was answered for (same body, model and endpoint) gets that answer without
    being sent, and identical requests in flight are sent once (see README's "Response cache").
    """
    numbers = check_numbers(  # finite, in range, whole where they count: see `validation`
        poll_interval=poll_interval,
        timeout=timeout,
        chunk_size=chunk_size,
        max_resubmissions=max_resubmissions,
        submit_wait=submit_wait,
    )
    if not isinstance(cache, bool):
        raise BatchInputError(f"cache must be True or False, not {cache!r}.")
    options = jobs.JobOptions(model_request_parameters, model_settings, callback, on_complete, cache=cache)
    limits = jobs.JobLimits(max_cost=check_max_cost(max_cost))
    return create_job(resolve_model(model), requests, numbers, options, limits)


def create_job(
    form: ModelForm, requests: Sequence[Any], numbers: JobNumbers, options: jobs.JobOptions, limits: jobs.JobLimits
) -> Batch:
    """`batch_create_sync`'s work, for a model form already resolved (`model_forms`) and arguments already checked;
    `batchline.direct` also sets the job's `limits`."""
    model = check_model(form.model)
    codec = get_provider(model)  # an unknown prefix raises NotImplementedError here, before anything is stored
    if form.instance is not None:
        codec.use_model(form.instance)  # the user's model encodes: its class, settings and profile make the body
    with gc_paused():  # many requests, built at once (see `_gc`)
        checked = to_batch_requests(requests, options.model_request_parameters, options.model_settings)
        encoded = jobs.encode(codec, [request for request, _ in checked])
        if limits.max_cost is not None:  # refused before anything is stored when its cost cannot stay within it
            refuse_over_budget(estimate(model, [request for request, _ in checked], encoded), limits.max_cost)
        app, runtime = caller_runtime()
        if form.endpoint is not None:
            reason = untrusted(codec.name, form.endpoint.base_url, runtime.settings.trusted_base_urls)
            if reason is not None:
                raise BatchInputError(reason)
            limits = dataclasses.replace(limits, endpoint=form.endpoint)
        completion = completion_spec(options.on_complete)
        check_tasks(options.callback, completion, runtime.settings.allowed_callbacks)  # deliver checks it again
        record = jobs.new_record(
            model,
            checked,
            numbers,
            options.model_request_parameters,
            options.model_settings,
            options.callback,
            completion,
            limits,
        )
        record = telemetry.stamp(record, [request for request, _ in checked])
        job_id, parts = jobs.store_job(runtime, codec, record, checked, encoded, cache=options.cache)
    jobs.send_submit(app, runtime, job_id, parts)
    return status.batch_once_settled(runtime, job_id, numbers.submit_wait)


batch_create = async_twin(batch_create_sync)


def estimate_cost_sync(
    model: Model | str,
    requests: Sequence[Any],
    *,
    model_request_parameters: ModelRequestParameters | None = None,
    model_settings: ModelSettings | None = None,
) -> CostEstimate:
    """What a job of these requests would use and cost, estimated here: nothing is stored or sent, and no broker or
    store is needed. It takes what `batch_create` takes, and checks it the same way."""
    form = resolve_model(model)
    name = check_model(form.model)
    codec = get_provider(name)
    if form.instance is not None:
        codec.use_model(form.instance)
    with gc_paused():
        checked = [request for request, _ in to_batch_requests(requests, model_request_parameters, model_settings)]
        return estimate(name, checked, jobs.encode(codec, checked))


estimate_cost = async_twin(estimate_cost_sync)


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
    _, runtime = caller_runtime()
    return status.batch_of(runtime, _job_id(model_or_batch, batch))


batch_status = async_twin(batch_status_sync)


def batch_list_sync(limit: int = 20) -> list[Batch]:
    """The most recent jobs in the store, newest first."""
    _, runtime = caller_runtime()
    batches = []
    for job_id in runtime.store.job_ids(limit):
        with contextlib.suppress(JobNotFound):  # listed, but its record expired: a job no longer
            batches.append(status.batch_of(runtime, job_id))
    return batches


batch_list = async_twin(batch_list_sync)


# -- results --------------------------------------------------------------------------------------------------------
def batch_results_sync(
    model_or_batch: Model | BatchRef, batch: BatchRef | None = None, *, custom_ids: Sequence[str] | None = None
) -> list[BatchResult]:
    """The results stored so far, in request order (all of them once the job is complete), decoded.

    `custom_ids` picks some (a callback task receives the ids of its chunk).
    """
    _, runtime = caller_runtime()
    job_id = _job_id(model_or_batch, batch)
    if is_agent_job(job_id):
        raise BatchInputError(f"{job_id} is an agent job: read its runs with batchline.agents.results_sync.")
    return results.read_results(runtime, job_id, custom_ids)


def batch_export_sync(model_or_batch: Model | BatchRef, out: IO[bytes], batch: BatchRef | None = None) -> int:
    """Write the stored results, in request order, as lines of the provider's own results file; answer how many.

    This is raw mode's way out: nothing is decoded, so any endpoint's results (embeddings included) come back as the
    provider wrote them.
    """
    _, runtime = caller_runtime()
    return results.export_results(runtime, _job_id(model_or_batch, batch), out)


batch_results = async_twin(batch_results_sync)


# -- cancel ---------------------------------------------------------------------------------------------------------
def batch_cancel_sync(model_or_batch: Model | BatchRef, batch: BatchRef | None = None) -> Batch:
    """Cancel the job: its provider batches that have not ended are cancelled by a worker. Kept results stay."""
    app, runtime = caller_runtime()
    job_id = _job_id(model_or_batch, batch)
    if is_agent_job(job_id):
        from .agents.api import cancel_sync

        return cancel_sync(job_id)
    if request_cancel(runtime, job_id):
        app.send_task("batchline.cancel", args=(job_id,))
    return status.batch_of(runtime, job_id)


batch_cancel = async_twin(batch_cancel_sync)


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
    instrument: bool | InstrumentationSettings | None = None,
    max_cost: float | Decimal | None = None,
    cache: bool = False,
) -> list[BatchResult]:
    """Run the requests as one job and wait: one `BatchResult` per request, in request order.

    Cancelling the awaiting task, or reaching `timeout` (which then raises `TimeoutError`), cancels the job's
    provider batches. `max_cost` is `batch_create`'s budget.
    """
    create = functools.partial(
        batch_create_sync,
        model,
        requests,
        model_request_parameters=model_request_parameters,
        model_settings=model_settings,
        poll_interval=poll_interval,
        timeout=timeout,
        max_resubmissions=max_resubmissions,
        submit_wait=0,
        instrument=instrument,
        max_cost=max_cost,
        cache=cache,
    )
    batch = await created(create)
    try:
        async with asyncio.timeout(timeout):
            await batch_wait(batch.id)
    except BaseException:
        # Cancelled by the caller, timed out, or interrupted: the provider batches must not run on unpaid-for.
        await cancel_quietly(batch.id)
        raise
    return await batch_results(batch.id)


async def created(create: Callable[[], Batch]) -> Batch:
    """Create a job in a thread, to the end even when the awaiting task is cancelled meanwhile: a job stored after its
    caller left (a timeout, a cancelled task) is then cancelled, so no paid batch runs for nobody."""
    creating = asyncio.ensure_future(asyncio.to_thread(create))
    try:
        return await asyncio.shield(creating)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await cancel_quietly((await creating).id)
        raise


async def cancel_quietly(job_id: str) -> None:
    """Cancel a job the caller is leaving; a failure to cancel (Redis down) never hides why the caller left."""
    with contextlib.suppress(Exception):
        await asyncio.shield(batch_cancel(job_id))


model_request_batch_sync = sync_twin(model_request_batch)


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


batch_wait_sync = sync_twin(batch_wait)

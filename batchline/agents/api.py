"""Agent runs on the fleet, from the caller's side: `run_batch` stores the job and its runs and starts them; status,
wait, cancel and results work on the job as on any batchline job, with `_sync` twins."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from celery import Signature
from pydantic import TypeAdapter
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelResponse
from pydantic_ai.usage import UsageLimits

from ..caller import async_twin, caller_runtime, sync_twin
from ..delivery import check_tasks, completion_spec
from ..errors import BatchInputError
from ..model_forms import resolve_model
from ..types import Batch
from ..validation import Range, check_number
from .loading import load_agent, load_deps_factory
from .outbox import CeleryOutbox
from .records import AgentJob, RunState, ticket_of
from .status import AgentRunResult, agent_batch_of, load, read_runs
from .stepping import end_cancelled
from .store import AgentStore

CANCEL_CHUNK = 500
FINAL_STATES = {state.value for state in RunState if state.is_final}
MAX_REQUESTS = Range(1, 100_000, " requests", integer=True)
MAX_WAIT = Range(0, 24 * 3600, " seconds", low_open=True)
POLL_INTERVAL = Range(0, 24 * 3600, " seconds", low_open=True)


@dataclass(frozen=True)
class AgentInput:
    """One run: a prompt, or a message history to go on from (or both: the prompt after the history)."""

    custom_id: str
    prompt: str | None = None
    message_history: Sequence[ModelMessage] | None = None


def _inputs(inputs: Iterable[AgentInput | tuple[str, str | Sequence[ModelMessage]]]) -> list[tuple[str, str, bytes]]:
    rows: list[tuple[str, str, bytes]] = []
    seen: set[str] = set()
    for n, item in enumerate(inputs):
        if isinstance(item, tuple) and len(item) == 2:
            custom_id, given = item
            item = AgentInput(custom_id, given) if isinstance(given, str) else AgentInput(custom_id, None, given)
        if not isinstance(item, AgentInput):
            raise BatchInputError(f"input {n} must be an AgentInput or a (custom_id, prompt or messages) pair.")
        if not isinstance(item.custom_id, str) or not item.custom_id:
            raise BatchInputError(f"input {n} has no custom_id.")
        if item.custom_id in seen:
            raise BatchInputError(f"custom_id {item.custom_id!r} is given twice.")
        seen.add(item.custom_id)
        if not item.prompt and not item.message_history:
            raise BatchInputError(f"input {item.custom_id!r} has neither a prompt nor a message history.")
        if item.message_history:
            _check_history(item.custom_id, item.message_history)
        history = ModelMessagesTypeAdapter.dump_json(list(item.message_history)) if item.message_history else b""
        rows.append((item.custom_id, item.prompt or "", history))
    if not rows:
        raise BatchInputError("run_batch needs at least one input.")
    return rows


def _check_history(custom_id: str, history: Sequence[ModelMessage]) -> None:
    """A history the workers can go on from: not one waiting on a request elsewhere, and no file the workers would
    fetch from their own network."""
    last = history[-1]
    if isinstance(last, ModelResponse) and last.state == "suspended":
        raise BatchInputError(
            f"input {custom_id!r}: its history ends in a suspended response; finish it where it began."
        )
    for message in history:
        for part in message.parts:
            content = getattr(part, "content", None)
            for item in content if isinstance(content, list) else [content]:
                if getattr(item, "force_download", None) == "allow-local":
                    raise BatchInputError(f"input {custom_id!r}: a file with force_download='allow-local' is refused.")


def run_batch_sync(
    agent: str,
    inputs: Iterable[AgentInput | tuple[str, str | Sequence[ModelMessage]]],
    *,
    deps: str | None = None,
    callback: str | None = None,
    on_complete: str | Signature | None = None,
    max_requests: int = 1000,
    max_wait: float = 30.0,
    poll_interval: float = 60.0,
    usage_limits: UsageLimits | None = None,
) -> Batch:
    """Run the agent at `agent` (`"myapp.agents:support"`, importable on the workers) once per input, on the workers.

    Every model request of every run joins its model's pool, shared by all jobs and workers; a pool goes to the
    provider as one batch when it holds `max_requests` or its oldest request has waited `max_wait` seconds. A run
    waiting on its batch holds no worker. `deps` names a factory in the agent's module that builds a run's deps on
    the worker from its custom_id. `callback(job_id, [custom_id])` runs as each run ends, `on_complete(summary)`
    once all have; both must be in the workers' `allowed_callbacks`, and the agent in `allowed_agents`.
    Nothing is stored when an argument is wrong.
    """
    app, runtime = caller_runtime()
    allowed = runtime.settings.allowed_agents
    loaded = load_agent(agent, allowed)
    if loaded.model is not None:
        resolve_model(loaded.model)  # a model batchline cannot batch is refused here, not on the workers
    if deps is not None:
        load_deps_factory(deps, agent, allowed)
    completion = completion_spec(on_complete)
    check_tasks(callback, completion, runtime.settings.allowed_callbacks)
    rows = _inputs(inputs)
    job = AgentJob(
        agent=agent,
        total=len(rows),
        created_at=time.time(),
        deps=deps or "",
        callback=callback or "",
        on_complete=completion or "",
        max_requests=int(check_number("max_requests", max_requests, MAX_REQUESTS)),
        max_wait=check_number("max_wait", max_wait, MAX_WAIT),
        poll_interval=check_number("poll_interval", poll_interval, POLL_INTERVAL),
        usage_limits=TypeAdapter(UsageLimits).dump_json(usage_limits).decode() if usage_limits else "",
    )
    job_id = AgentStore(runtime.store).create_job(job, rows)
    # A message lost here is sent by the sweep: every run is due from the start.
    CeleryOutbox(app).steps([(job_id, index) for index in range(len(rows))])
    return agent_batch_of(runtime, job_id)


run_batch = async_twin(run_batch_sync)


def status_sync(job_id: str | Batch) -> Batch:
    _, runtime = caller_runtime()
    return agent_batch_of(runtime, _id(job_id))


status = async_twin(status_sync)


def results_sync(
    job_id: str | Batch, *, custom_ids: Sequence[str] | None = None, output_type: Any = None
) -> list[AgentRunResult]:
    """The runs that have ended, in input order. Outputs are typed by `output_type`, else by the agent's output
    type when this process can import the agent and it is one type; else they are their JSON value."""
    _, runtime = caller_runtime()
    job = load(runtime, _id(job_id))
    if output_type is None:
        output_type = _single_output_type(job.agent, runtime.settings.allowed_agents)
    return read_runs(runtime, _id(job_id), custom_ids, output_type)


results = async_twin(results_sync)


def cancel_sync(job_id: str | Batch) -> Batch:
    """Cancel the job: its runs end `cancelled` where they stand, and requests still in a pool are taken out (a
    request already in a provider batch, shared with other jobs, runs on; its result is dropped). Safe to call again:
    a cancel cut off halfway is finished by the next."""
    app, runtime = caller_runtime()
    job_id = _id(job_id)
    agents = AgentStore(runtime.store)
    job = load(runtime, job_id)
    if agents.cancel(job_id) or job.state == "cancelled":
        out = CeleryOutbox(app)
        for start in range(0, job.total, CANCEL_CHUNK):
            for index, state, _ in agents.run_steps(job_id, range(start, min(start + CANCEL_CHUNK, job.total))):
                if state not in FINAL_STATES:
                    end_cancelled(runtime, agents, out, job_id, index)
            # Once a run has ended no round can pool a request for it: what it waited on is all there is to take out.
            for index, state, step in agents.run_steps(job_id, range(start, min(start + CANCEL_CHUNK, job.total))):
                if state == RunState.CANCELLED and step:
                    agents.withdraw(ticket_of(job_id, index, step - 1))
    return agent_batch_of(runtime, job_id)


cancel = async_twin(cancel_sync)


async def wait(job_id: str | Batch) -> Batch:
    """Wait until every run has ended; wrap it in `asyncio.timeout` to bound it."""
    delay = 0.01
    while not (batch := await status(job_id)).is_complete:
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    return batch


wait_sync = sync_twin(wait)


def _id(job: str | Batch) -> str:
    return job.id if isinstance(job, Batch) else job


def _single_output_type(agent: str, allowed: frozenset[str]) -> Any:
    try:
        spec = load_agent(agent, allowed).output_type
    except Exception:  # the caller cannot import the agent: the outputs come back as JSON values
        return None
    return spec if isinstance(spec, type) else None

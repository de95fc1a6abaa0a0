"""A run taken on by a worker: one round at a time (resume from the stored history, run the tools, make the next
model request into the pool, end suspended), saved atomically so a worker killed anywhere loses nothing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pydantic_core
import redis
from kombu.exceptions import OperationalError
from pydantic import TypeAdapter
from pydantic_ai import Agent
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import ModelMessagesTypeAdapter
from pydantic_ai.models import Model
from pydantic_ai.output import PendingModelResponse
from pydantic_ai.usage import UsageLimits

from ..delivery import check_tasks
from ..errors import CallbackNotAllowed
from ..runtime import Runtime
from . import context
from .loading import load_agent, load_deps_factory, make_deps, model_of
from .outbox import Outbox
from .pooled import Flush, Place, PooledModel, pending_ticket
from .records import AgentJob, RunRecord, RunState, ticket_of
from .store import AgentStore
from .usage import USAGE, Added, load_usage, resume_from

log = logging.getLogger("batchline")

ROUNDS_PER_STEP = 100
"""Rounds one step takes in a row when each request's result is already in, before it hands the run back."""

_INFRASTRUCTURE = (redis.RedisError, OperationalError)
"""The store or the broker failing: the round did not happen, and is taken again; never the run's own error."""

LIMITS = TypeAdapter(UsageLimits)


@dataclass
class _Pooling(AbstractCapability[Any]):
    """Puts the run's model behind the pool, whichever model serves it."""

    runtime: Runtime
    place: Place
    flush: Flush

    def get_wrapper_model(self, model: Model) -> Model | None:
        return PooledModel(model, self.runtime, self.place, self.flush)


async def advance(runtime: Runtime, out: Outbox, job_id: str, index: int) -> str:
    """Take run `index` as far as it goes now; answer where it stopped (`waiting`, `done`, `busy`, ...)."""
    agents = AgentStore(runtime.store)
    token = agents.lock(job_id, index, runtime.settings.agent_lease)
    if token is None:
        return "busy"  # another worker has it; if that one dies, the sweep sends the run again after the lease
    try:
        for _ in range(ROUNDS_PER_STEP):
            outcome = await _round(runtime, agents, out, job_id, index)
            if outcome != "again":
                return outcome
        out.steps([(job_id, index)])
        return "handed on"
    finally:
        agents.unlock(job_id, index, token)


async def _round(runtime: Runtime, agents: AgentStore, out: Outbox, job_id: str, index: int) -> str:
    job, run = agents.job(job_id), agents.run(job_id, index)
    if job is None or run is None:
        agents.forget_due(job_id, index)
        return "gone"
    if run.state.is_final:
        deliver(runtime, agents, out, job_id, index, job, run)
        return run.state.value
    if job.state == "cancelled":
        return end_cancelled(runtime, agents, out, job_id, index)
    if run.state == RunState.WAITING:
        where = agents.ticket(ticket_of(job_id, index, run.step - 1)) or ""
        if not where.startswith("done:"):
            agents.forget_due_unless_answered(job_id, index, ticket_of(job_id, index, run.step - 1))
            return "waiting"
    return await _run_round(runtime, agents, out, job_id, index, job, run)


async def _run_round(
    runtime: Runtime, agents: AgentStore, out: Outbox, job_id: str, index: int, job: AgentJob, run: RunRecord
) -> str:
    before = load_usage(run.usage)
    waiting = run.state == RunState.WAITING
    history = ModelMessagesTypeAdapter.validate_json(run.history) if run.history else []
    place = Place(job_id, index, run.step, job.max_wait, job.max_requests, job.poll_interval)
    pooling = _Pooling(runtime, place, out.flush)
    fleet = context.enter(context.FleetRun(job_id, run.custom_id, index))
    try:
        agent = load_agent(job.agent, runtime.settings.allowed_agents)
        factory = load_deps_factory(job.deps, job.agent, runtime.settings.allowed_agents) if job.deps else None
        result = await agent.run(
            None if waiting else (run.prompt or None),
            message_history=history or None,
            model=model_of(agent),
            deps=await make_deps(factory, run.custom_id) if factory is not None else None,
            output_type=_with_pending(agent),
            usage_limits=LIMITS.validate_json(job.usage_limits) if job.usage_limits else None,
            usage=resume_from(before, waiting),
            capabilities=[pooling],
        )
    except _INFRASTRUCTURE:
        raise
    except Exception as error:  # the run ends as pydantic-ai ended it: its error is this input's result
        fields: dict[str, bytes | str] = {"error": f"{type(error).__name__}: {error}", "history": run.history}
        fields["usage"] = run.usage
        ended = agents.finish(job_id, index, run.step, RunState.FAILED, fields, Added())
        return _ended(runtime, agents, out, job_id, index, ended, "failed")
    finally:
        context.leave(fleet)
    usage = result.usage
    added = Added.between(before, usage)
    messages = result.all_messages_json()
    if isinstance(result.output, PendingModelResponse):
        ticket = pending_ticket(result.output.response)
        if ticket is None or ticket != ticket_of(job_id, index, run.step):
            raise RuntimeError(f"run {index} of {job_id} ended suspended on a request the fleet did not make")
        saved = agents.wait(job_id, index, run.step, ticket, messages, USAGE.dump_json(usage), added)
        return {2: "again", 1: "waiting", 0: "raced"}[saved]
    fields = {"output": pydantic_core.to_json(result.output), "history": messages, "usage": USAGE.dump_json(usage)}
    ended = agents.finish(job_id, index, run.step, RunState.DONE, fields, added)
    return _ended(runtime, agents, out, job_id, index, ended, "done")


def _with_pending(agent: Agent[Any, Any]) -> Any:
    spec = agent.output_type
    return (
        [*spec, PendingModelResponse]
        if isinstance(spec, Sequence) and not isinstance(spec, str)
        else [
            spec,
            PendingModelResponse,
        ]
    )


def _ended(runtime: Runtime, agents: AgentStore, out: Outbox, job_id: str, index: int, ended: int, state: str) -> str:
    if ended == 0:
        return "raced"  # another try of this round saved it first: its result stands
    job, run = agents.job(job_id), agents.run(job_id, index)
    if job is not None and run is not None:
        deliver(runtime, agents, out, job_id, index, job, run)
    return state


def end_cancelled(runtime: Runtime, agents: AgentStore, out: Outbox, job_id: str, index: int) -> str:
    fields: dict[str, bytes | str] = {"error": "cancelled: the job was cancelled before this run ended"}
    ended = agents.finish(job_id, index, -1, RunState.CANCELLED, fields, Added())
    return _ended(runtime, agents, out, job_id, index, ended, "cancelled")


def deliver(
    runtime: Runtime, agents: AgentStore, out: Outbox, job_id: str, index: int, job: AgentJob, run: RunRecord
) -> None:
    """Tell the application a run ended (its callback) and, when it was the last, that the job did (`on_complete`);
    each at least once: marked only after it was sent."""
    if run.delivered:
        agents.forget_due(job_id, index)
        return
    try:
        check_tasks(job.callback or None, job.on_complete or None, runtime.settings.allowed_callbacks)
    except CallbackNotAllowed as refused:
        log.warning("agent job %s: not delivered: %s", job_id, refused)
        agents.delivered(job_id, index, completion=True)
        return
    if job.callback:
        out.callback(job.callback, job_id, [run.custom_id])
    completion = job.ended >= job.total and not agents.completion_sent(job_id)
    if completion and job.on_complete:
        out.complete(job.on_complete, summary(job_id, job))
    agents.delivered(job_id, index, completion)


def summary(job_id: str, job: AgentJob) -> dict[str, Any]:
    """The job's counts and usage, with no prompt and no output: what `on_complete` gets and Flower shows."""
    return {
        "job_id": job_id,
        "agent": job.agent,
        "status": job.state,
        "total": job.total,
        "succeeded": job.done,
        "failed": job.failed,
        "cancelled": job.cancelled,
        "waiting": job.waiting,
        "runs_by_step": {str(k): v for k, v in job.steps.items()},
        "model_requests": job.model_requests,
        "tool_calls": job.tool_calls,
        "input_tokens": job.input_tokens,
        "output_tokens": job.output_tokens,
    }

"""A run taken on by a worker: one round at a time (resume from the stored history, run the tools, make the next
model request into the pool, end suspended), saved atomically so a worker killed anywhere loses nothing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pydantic_core
from pydantic import TypeAdapter
from pydantic_ai import Agent
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import ModelMessagesTypeAdapter
from pydantic_ai.models import Model
from pydantic_ai.output import PendingModelResponse
from pydantic_ai.usage import UsageLimits

from ..delivery import check_tasks
from ..errors import CallbackNotAllowed
from ..pipeline.base import OUTAGE
from ..runtime import Runtime
from . import context
from .loading import load_agent, load_deps_factory, make_deps, model_of
from .outbox import Outbox
from .pooled import Place, PooledModel, pending_ticket
from .records import AgentJob, Request, RunRecord, RunState, ticket_of
from .store import AgentStore
from .usage import USAGE, Added, load_usage, resume_from

log = logging.getLogger("batchline")

MAX_TRIES = 10
"""Tries of one round (its worker died, or it raised outside the agent) before the run fails instead of looping."""


LIMITS = TypeAdapter(UsageLimits)


@dataclass
class _Pooling(AbstractCapability[Any]):
    """Puts the run's model behind the pool, whichever model serves it."""

    runtime: Runtime
    place: Place
    models: list[PooledModel] = field(default_factory=list)

    def get_wrapper_model(self, model: Model) -> Model | None:
        pooled = PooledModel(model, self.runtime, self.place)
        self.models.append(pooled)
        return pooled

    @property
    def joined(self) -> Request | None:
        """The request the round made, if it made one."""
        return next((m.joined for m in self.models if m.joined is not None), None)


async def advance(runtime: Runtime, out: Outbox, job_id: str, index: int) -> str:
    """Take run `index` as far as it goes now; answer where it stopped (`waiting`, `done`, `busy`, ...)."""
    agents = AgentStore(runtime.store)
    token = agents.lock(job_id, index, runtime.settings.agent_lease)
    if token is None:
        return "busy"  # another worker has it; if that one dies, the sweep sends the run again after the lease
    try:
        return await _round(runtime, agents, out, job_id, index)
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
    if (tries := agents.begin_round(job_id, index, run.step)) > MAX_TRIES:
        error = f"RuntimeError: round {run.step + 1} was tried {tries - 1} times and never saved (see the worker log)"
        return _fail(runtime, agents, out, job_id, index, run, error)
    try:
        return await _run_round(runtime, agents, out, job_id, index, job, run)
    except OUTAGE:  # the round did not happen and is taken again, never the run's own error
        raise
    except Exception as error:  # the run ends as pydantic-ai ended it: its error is this input's result
        return _fail(runtime, agents, out, job_id, index, run, f"{type(error).__name__}: {error}")


def _fail(
    runtime: Runtime, agents: AgentStore, out: Outbox, job_id: str, index: int, run: RunRecord, error: str
) -> str:
    ended = agents.finish(job_id, index, run.step, RunState.FAILED, {"error": error}, Added())
    return _ended(runtime, agents, out, job_id, index, ended, "failed")


async def _run_round(
    runtime: Runtime, agents: AgentStore, out: Outbox, job_id: str, index: int, job: AgentJob, run: RunRecord
) -> str:
    before = load_usage(run.usage)
    waiting = run.state == RunState.WAITING
    history = ModelMessagesTypeAdapter.validate_json(run.history) if run.history else []
    pooling = _Pooling(runtime, Place(job_id, index, run.step))
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
    finally:
        context.leave(fleet)
    usage = result.usage
    added = Added.between(before, usage)
    messages = result.all_messages_json()
    if isinstance(result.output, PendingModelResponse):
        request = pooling.joined
        if request is None or pending_ticket(result.output.response) != request.ticket:
            raise RuntimeError("the run ended suspended on a request it did not make on the fleet")
        saved, size, sooner = agents.wait(
            job, job_id, index, run.step, request, (messages, USAGE.dump_json(usage)), added
        )
        if not saved:
            return "raced"  # another try of this round saved it first (with its own request): that one stands
        if size >= job.max_requests:
            out.flush(request.pool, 0.0)
        elif sooner:
            out.flush(request.pool, job.max_wait)
        return "waiting"
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
        # One sender at a time: the runs that end last end at once. A sender that died leaves its run due, and the
        # sweep's next try claims again once the claim has lapsed.
        completion = agents.claim_completion(job_id, runtime.settings.agent_lease)
        if completion:
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

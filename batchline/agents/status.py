"""An agent job from outside, on the caller's side: its `Batch` (the same handle every job has) and its runs'
results, read from the store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter
from pydantic_ai.usage import RunUsage

from ..errors import JobNotFound
from ..runtime import Runtime
from ..types import AgentProgress, Batch, BatchStatus, BatchUsage
from .records import AgentJob, RunState
from .store import AgentStore
from .usage import load_usage

READ_CHUNK = 500


def load(runtime: Runtime, job_id: str) -> AgentJob:
    job = AgentStore(runtime.store).job(job_id)
    if job is None:
        raise JobNotFound(f"No agent job {job_id!r} in the store (wrong id, or its TTL has passed).")
    return job


def agent_batch_of(runtime: Runtime, job_id: str) -> Batch:
    job = load(runtime, job_id)
    return Batch(
        id=job_id,
        model=job.agent,
        status=BatchStatus(job.state),
        created_at=datetime.fromtimestamp(job.created_at, UTC),
        completed_at=datetime.fromtimestamp(job.completed_at, UTC) if job.completed_at else None,
        request_count=job.total,
        completed_count=job.done,
        failed_count=job.failed + job.cancelled,
        usage=BatchUsage(input_tokens=job.input_tokens, output_tokens=job.output_tokens),
        agent=AgentProgress(
            not_started=job.new,
            waiting=job.waiting,
            runs_by_step=job.steps,
            succeeded=job.done,
            failed=job.failed,
            cancelled=job.cancelled,
            model_requests=job.model_requests,
            tool_calls=job.tool_calls,
        ),
    )


@dataclass(frozen=True)
class AgentRunResult:
    """How one input's run ended: its output (typed by the agent's output type when the caller can import the
    agent), its messages and usage; or its error, as pydantic-ai raised it."""

    custom_id: str
    state: RunState
    output: Any = None
    messages: list[ModelMessage] | None = None
    usage: RunUsage | None = None
    error: str | None = None

    @property
    def is_successful(self) -> bool:
        return self.state == RunState.DONE


def read_runs(
    runtime: Runtime, job_id: str, custom_ids: Sequence[str] | None = None, output_type: Any = None
) -> list[AgentRunResult]:
    """The runs that have ended, in input order (or those of `custom_ids`)."""
    agents = AgentStore(runtime.store)
    load(runtime, job_id)
    ids = agents.ids(job_id)
    wanted = None if custom_ids is None else set(custom_ids)
    indexes = [i for i, cid in enumerate(ids) if wanted is None or cid in wanted]
    adapter = TypeAdapter(output_type) if output_type is not None else None
    out: list[AgentRunResult] = []
    for start in range(0, len(indexes), READ_CHUNK):
        for run in agents.runs(job_id, indexes[start : start + READ_CHUNK]):
            if run is None or not run.state.is_final:
                continue
            messages = ModelMessagesTypeAdapter.validate_json(run.history) if run.history else None
            output = _output(run.output, adapter) if run.state == RunState.DONE else None
            usage = load_usage(run.usage) if run.usage else None
            out.append(AgentRunResult(run.custom_id, run.state, output, messages, usage, run.error or None))
    return out


def _output(raw: bytes, adapter: TypeAdapter[Any] | None) -> Any:
    if adapter is not None:
        try:
            return adapter.validate_json(raw)
        except ValidationError:
            pass  # an output of another member of the agent's output types: given as its JSON value
    return orjson.loads(raw)

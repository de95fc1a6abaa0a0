"""What the store keeps of an agent job and of each of its runs, as types.

An agent job (`P:agent:A`) runs one pydantic-ai agent over many inputs; each input is a run (`P:agent:A:run:I`) that
goes round by round: a model request joins the model's shared pool and the run waits, holding no worker, until its
result lands; then any worker takes the run on (its tool calls, its next model request).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

TICKET_SEPARATOR = "-"


class RunState(enum.StrEnum):
    NEW = "new"  # not started: no model request made yet
    WAITING = "waiting"  # its model request `step` is in a pool or a provider batch
    DONE = "done"  # ended with its output
    FAILED = "failed"  # ended with an error, as pydantic-ai would have raised it
    CANCELLED = "cancelled"  # the job was cancelled before the run ended

    @property
    def is_final(self) -> bool:
        return self in (RunState.DONE, RunState.FAILED, RunState.CANCELLED)


def ticket_of(job_id: str, index: int, step: int) -> str:
    """The custom_id of a run's `step`-th model request in its provider batch: the same on every try of that step,
    so a step run again after a crash joins the pool once. Within every provider's custom_id alphabet and length."""
    return f"{job_id}{TICKET_SEPARATOR}{index}{TICKET_SEPARATOR}{step}"


AGENT_JOB_PREFIX = "agent_"


def is_agent_job(job_id: str) -> bool:
    return job_id.startswith(AGENT_JOB_PREFIX)


@dataclass(frozen=True, slots=True)
class Request:
    """A round's new model request, encoded by the run's own model, for its model's pool."""

    ticket: str
    pool: str
    """The pool it joins: its model string, and its endpoint's hash when it has one."""
    body: bytes
    model: str
    endpoint: str
    group: str


@dataclass(frozen=True, slots=True)
class AgentJob:
    """An agent job's hash: what it runs, and counts of its runs by state."""

    agent: str
    """The agent's import path, `module:attribute`."""
    total: int
    created_at: float
    deps: str = ""
    """The import path of the factory that builds a run's deps on the worker, from its custom_id; empty for none."""
    state: str = "in_progress"
    completed_at: float = 0.0
    callback: str = ""
    on_complete: str = ""
    max_requests: int = 1000
    max_wait: float = 30.0
    poll_interval: float = 60.0
    usage_limits: str = ""
    """pydantic-ai `UsageLimits` as JSON, applied to every run across its rounds; empty for none."""
    new: int = 0
    waiting: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    tool_calls: int = 0
    model_requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    steps: dict[int, int] = field(default_factory=dict)
    """How many runs wait on their n-th model request, by n."""

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> AgentJob:
        numbers = {"total", "max_requests", "new", "waiting", "done", "failed", "cancelled", "tool_calls"}
        numbers |= {"model_requests", "input_tokens", "output_tokens"}
        floats = {"created_at", "completed_at", "max_wait", "poll_interval"}
        known = {f for f in cls.__dataclass_fields__ if f != "steps"}
        values: dict[str, object] = {}
        for key, value in raw.items():
            if key in numbers:
                values[key] = int(value)
            elif key in floats:
                values[key] = float(value)
            elif key in known:
                values[key] = value
        steps = {int(k[5:]): int(v) for k, v in raw.items() if k.startswith("step:") and int(v) > 0}
        return cls(**values, steps=dict(sorted(steps.items())))  # type: ignore[arg-type]

    def to_hash(self) -> dict[str, str | int | float]:
        out: dict[str, str | int | float] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name != "steps" and not (name == "completed_at" and not value):
                out[name] = value
        return out

    @property
    def ended(self) -> int:
        return self.done + self.failed + self.cancelled


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run's hash: its input, where it is, and its history so far."""

    custom_id: str
    state: RunState = RunState.NEW
    step: int = 0
    """The number of model requests the run has made."""
    prompt: str = ""
    history: bytes = b""
    """pydantic-ai's message history as JSON: the input history at first, then the run's own after each round."""
    usage: bytes = b""
    """pydantic-ai's `RunUsage` as JSON, across the run's rounds."""
    output: bytes = b""
    """The final output as JSON."""
    error: str = ""
    delivered: bool = False

    @classmethod
    def from_hash(cls, raw: Mapping[bytes, bytes]) -> RunRecord | None:
        if not raw:
            return None
        text = {k.decode(): v for k, v in raw.items()}
        return cls(
            custom_id=text["custom_id"].decode(),
            state=RunState(text.get("state", b"new").decode()),
            step=int(text.get("step", b"0")),
            prompt=text.get("prompt", b"").decode(),
            history=text.get("history", b""),
            usage=text.get("usage", b""),
            output=text.get("output", b""),
            error=text.get("error", b"").decode(),
            delivered=text.get("delivered", b"") == b"1",
        )

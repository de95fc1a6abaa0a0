"""What a tool can know about the fleet run it serves: the job, the input, and a key that stays the same when a
round is taken again after a crash (tools run at least once)."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Any

from pydantic_ai import RunContext


@dataclass(frozen=True)
class FleetRun:
    job_id: str
    custom_id: str
    index: int


_current: contextvars.ContextVar[FleetRun | None] = contextvars.ContextVar("batchline_fleet_run", default=None)


def current_run() -> FleetRun | None:
    """The fleet run this code runs in (inside a tool, a deps factory or a validator), or None outside one."""
    return _current.get()


def idempotency_key(ctx: RunContext[Any]) -> str:
    """A key for the side effect of the tool call `ctx` serves, the same on every try of it: a tool may run again
    when its worker died before the round was saved, and can use this key to do its effect once."""
    run = _current.get()
    if run is None:
        raise RuntimeError("idempotency_key() is for tools of a run on the fleet (batchline.agents).")
    return f"{run.job_id}:{run.custom_id}:{ctx.tool_call_id}"


def enter(run: FleetRun) -> contextvars.Token[FleetRun | None]:
    return _current.set(run)


def leave(token: contextvars.Token[FleetRun | None]) -> None:
    _current.reset(token)

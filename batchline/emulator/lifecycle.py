"""Batch lifecycles, computed from timestamps whenever a batch is read.

Each provider's batch goes through its stages, each lasting `stage_seconds` on the emulator's clock:
OpenAI validating -> in_progress -> finalizing -> completed; Anthropic in_progress -> ended; Gemini PENDING ->
RUNNING -> SUCCEEDED; Mistral QUEUED -> RUNNING -> SUCCESS. A read advances the batch through every stage whose time
has passed, so with 0 seconds the batch has ended on the first read after create. Requests run during the running
stage, spread evenly over it.
"""

from __future__ import annotations

import math

from .config import Provider
from .store import BatchRecord, State

STAGES: dict[Provider, tuple[str, ...]] = {
    "openai": ("validating", "in_progress", "finalizing"),
    "anthropic": ("in_progress",),
    "gemini": ("pending", "running"),
    "mistral": ("QUEUED", "RUNNING"),
}
RUNNING_STAGE: dict[Provider, int] = {"openai": 1, "anthropic": 0, "gemini": 1, "mistral": 1}


def stage_name(batch: BatchRecord) -> str:
    return STAGES[batch.provider][batch.stage]


def progress(batch: BatchRecord, state: State, at: float) -> int:
    """How many requests have run by `at`."""
    if batch.ended or batch.cancelling:
        return batch.done
    running = RUNNING_STAGE[batch.provider]
    if batch.stage < running:
        return 0
    if batch.stage > running:
        return batch.total
    seconds = state.config.stage_seconds
    if seconds <= 0:  # instant timing: requests run when a read ends the batch, so none has run before
        return 0
    fraction = min(1.0, max(0.0, (at - batch.stage_started) / seconds))
    return math.floor(batch.total * fraction)


def finish(batch: BatchRecord, outcome: str, at: float, done: int) -> None:
    batch.outcome = outcome
    batch.done = done
    batch.cancelling = False
    batch.times[outcome] = at


def advance(batch: BatchRecord, state: State) -> None:
    """Move `batch` through every stage whose time has passed."""
    seconds = max(0.0, state.config.stage_seconds)
    now = state.now()
    # A Mistral job's own `timeout_hours` ends it sooner than the emulator's window when shorter.
    deadline = batch.created_at + min(state.config.completion_window_seconds, batch.info.get("timeout", float("inf")))
    stages = STAGES[batch.provider]
    fault = batch.fault
    while not batch.ended:
        stage_end = batch.stage_started + seconds
        if not batch.cancelling and deadline < stage_end and now >= deadline:
            finish(batch, "expired", deadline, progress(batch, state, deadline))
            return
        if now < stage_end:
            return
        if batch.cancelling:
            finish(batch, "cancelled", stage_end, batch.done)
            return
        if batch.stage == 0 and fault is not None and fault.outcome == "fail":
            finish(batch, "failed", stage_end, 0)
            return
        if batch.stage == RUNNING_STAGE[batch.provider] and fault is not None and fault.outcome != "fail":
            done = math.floor(batch.total * min(1.0, max(0.0, fault.done_fraction)))
            outcome = "expired" if fault.outcome == "expire" else "cancelled"
            if outcome == "cancelled":
                batch.times["cancelling"] = stage_end
            finish(batch, outcome, stage_end, done)
            return
        batch.stage += 1
        batch.stage_started = stage_end
        if batch.stage >= len(stages):
            batch.stage = len(stages) - 1
            finish(batch, "completed", stage_end, batch.total)
            return
        batch.times[stages[batch.stage]] = stage_end


def cancel(batch: BatchRecord, state: State, *, immediate: bool = False) -> bool:
    """Start cancelling `batch`; False if it has already ended. Requests already run keep their results.

    With instant timing the batch is not advanced first, so a batch cancelled before anyone read it ran nothing.
    """
    if state.config.stage_seconds > 0:
        advance(batch, state)
    if batch.ended:
        return False
    if batch.cancelling:
        return True
    now = state.now()
    batch.done = progress(batch, state, now)
    batch.times["cancelling"] = now
    if immediate:
        finish(batch, "cancelled", now, batch.done)
        return True
    batch.cancelling = True
    batch.stage_started = now
    return True

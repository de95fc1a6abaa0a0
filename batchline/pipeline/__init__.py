"""Submit, poll, fetch and finish, as plain functions of (runtime, ids), a module per step.

The Celery tasks are thin wrappers around these; each function reads the current truth from the store, does one
step, and says what comes next, so that a redelivered message repeats nothing that was done.
"""

from __future__ import annotations

from .base import DELIVERED, NOT_FOUND, POISON_ATTEMPTS, UNREADABLE, Next
from .ending import cancel, final_status, finish, request_cancel
from .fetching import Screen, fetch
from .grouped import backoff, poll_group
from .polling import poll, poll_countdown
from .reporting import delivery_chunks, summary
from .submitting import submit
from .sweep import RESUBMITS_PER_SWEEP, stale_polls, stale_submits, submit_threshold

__all__ = [
    "DELIVERED",
    "NOT_FOUND",
    "POISON_ATTEMPTS",
    "RESUBMITS_PER_SWEEP",
    "UNREADABLE",
    "Next",
    "Screen",
    "backoff",
    "cancel",
    "delivery_chunks",
    "fetch",
    "final_status",
    "finish",
    "poll",
    "poll_countdown",
    "poll_group",
    "request_cancel",
    "stale_polls",
    "stale_submits",
    "submit",
    "submit_threshold",
    "summary",
]

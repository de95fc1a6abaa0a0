"""What every step shares: the step that comes next, a part's provider snapshot as the store keeps it, and the count
of poisoned tries."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import orjson
import redis
from kombu.exceptions import OperationalError

from ..errors import BatchlineError, MalformedAnswer
from ..providers import Snapshot
from ..records import PartRecord, PartState
from ..runtime import Runtime
from ..telemetry import record_part

log = logging.getLogger("batchline")
T = TypeVar("T")
_LIVE = (PartState.PENDING, PartState.SUBMITTED)

OUTAGE = (redis.ConnectionError, redis.TimeoutError, OperationalError)
"""Redis or the broker away: a step that meets one gives its message back rather than failing (see `tasks`)."""


PARSE_ERRORS = (ValueError, TypeError, LookupError, AttributeError, ArithmeticError)
"""What a parser raises on a value it did not foresee (an `int()` choking, a list where a dict was): not a full disk,
a time limit or a lost connection, which are never the provider's answer."""


def unforeseen(what: str, error: Exception) -> MalformedAnswer:
    """The malformed answer a parser's unforeseen exception on `what` the provider sent stands for: tried again a
    bounded number of times, then the part ends. Raised as it was, it failed the step on every try and the job never
    ended. Only its type is named: its text may quote the answer."""
    name = type(error).__name__
    log.error("%s made batchline's parser raise %s", what, name)
    return MalformedAnswer(f"{what} made batchline's parser raise {name}")


def guarded(what: str, call: Callable[[], T]) -> T:
    """`call()`, where a parse error on `what` the provider sent becomes `unforeseen(what, error)`; batchline's own
    errors (a provider's refusal or busy answer included) pass as they are."""
    try:
        return call()
    except BatchlineError:
        raise
    except PARSE_ERRORS as error:
        failure = unforeseen(what, error)
    raise failure  # outside the handler: the answer's text is not kept as the failure's context either


NOT_FOUND = "not_found"
"""The provider status batchline gives a batch the provider answers 404 for: it has no results to read."""

OVERDUE = "overdue"
"""The provider status batchline gives a batch still running `batch_age_limit` after it was created: past every
provider's own window, so its results are not waited for any longer."""

UNREADABLE = "unreadable"
"""The provider status batchline gives a batch whose status answers could not be read (or pointed somewhere they
must not): there are no results to look for."""

DELIVERED = "all"
"""The delivery marker of a job whose delivery step ran to its end (its callback chunks and its summary sent)."""

POISON_ATTEMPTS = 5
"""How often a poll or fetch of one part may meet poison (an unreadable answer, a refused download, one that breaks
off) before the part ends failed with that cause. The task's own back-off runs between tries: 1, 2, 4, 8 s for a
fetch; for a poll, whose regular re-polls are retries too, up to 300 s each. A provider that is busy (429, 5xx, no
connection) is not poison and is waited for as before."""


@dataclass(frozen=True)
class Next:
    """The step a task schedules after its own."""

    step: Literal["submit", "poll", "fetch", "deliver", "cancel"]
    part: int = 0
    countdown: float = 0.0


def snapshot_fields(snapshot: Snapshot) -> dict[str, str | int]:
    return {
        "provider_status": snapshot.status,
        "provider_state": snapshot.state,
        "completed": snapshot.completed,
        "failed": snapshot.failed,
        "error": snapshot.error or "",
        "details": orjson.dumps(snapshot.details).decode(),
    }


def snapshot_of(part: PartRecord) -> Snapshot:
    """The provider's last word on a part, as the store kept it."""
    return Snapshot(
        id=part.provider_id,
        status=part.provider_status,
        state=part.provider_state or "running",  # type: ignore[arg-type]
        total=part.total,
        completed=part.completed,
        failed=part.failed,
        error=part.error or None,
        details=orjson.loads(part.details or "{}"),
    )


def record_created(runtime: Runtime, job_id: str, n: int, snapshot: Snapshot) -> bool:
    """Keep the provider batch of part `n`, which now exists, and start its poll chain: its id and its state in one
    step, so no part is ever left pending with an id. False when the part had left `pending` (a cancel ended it, or
    another worker recorded it)."""
    store = runtime.store
    fields = {"provider_id": snapshot.id, "submitted_at": time.time(), **snapshot_fields(snapshot)}
    if not store.transition_part(job_id, n, PartState.SUBMITTED, PartState.PENDING, **fields):
        return False
    if runtime.settings.instrument:
        record_part(runtime, store.load_job(job_id).model, "submitted")
    store.record_poll(job_id, n, counted=False)
    return True


def end_part(runtime: Runtime, job_id: str, n: int, snapshot: Snapshot, since: tuple[PartState, ...] = _LIVE) -> bool:
    """Mark a part ended with the provider's final word, once, from one of the states `since`: whoever ends it first
    is the one recorded. True when this call ended it."""
    fields = snapshot_fields(snapshot) | ({"provider_id": snapshot.id} if snapshot.id else {})
    ended = runtime.store.transition_part(job_id, n, PartState.ENDED, *since, **fields)
    if ended and runtime.settings.instrument:
        record_part(runtime, runtime.store.load_job(job_id).model, "ended", snapshot.state)
    return ended


def poisoned(runtime: Runtime, job_id: str, n: int, step: str) -> bool:
    """Count one more poisoned try of `step` on part `n`; True once the tries are spent."""
    return runtime.store.strike(job_id, n, f"{step}_poisoned") >= POISON_ATTEMPTS

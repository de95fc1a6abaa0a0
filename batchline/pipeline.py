"""Submit, poll, fetch and finish, as plain functions of (runtime, ids).

The Celery tasks are thin wrappers around these; each function reads the current truth from the store, does one
step, and says what comes next, so that a redelivered message repeats nothing that was done.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from .errors import (
    BrokenDownload,
    HostileAnswer,
    JobNotFound,
    MalformedAnswer,
    ProviderRejected,
    TransientProviderError,
)
from .providers import Provider, Snapshot
from .records import PartState
from .runtime import Runtime
from .store import RESULT_TAGS
from .types import BatchStatus

log = logging.getLogger("batchline")

NOT_FOUND = "not_found"
"""The provider status batchline gives a batch the provider answers 404 for: it has no results to read."""

UNREADABLE = "unreadable"
"""The provider status batchline gives a batch whose status answers could not be read (or pointed somewhere they
must not): there are no results to look for."""

POISON_ATTEMPTS = 5
"""How often a poll or fetch of one part may meet poison (an unreadable answer, a refused download, one that breaks
off) before the part ends failed with that cause. The task's own back-off runs between tries: 1, 2, 4, 8 s for a
fetch; for a poll, whose regular re-polls are retries too, up to 300 s each. A provider that is busy (429, 5xx, no
connection) is not poison and is waited for as before."""

_ACTIVE = (BatchStatus.PENDING, BatchStatus.IN_PROGRESS, BatchStatus.CANCELLING)


@dataclass(frozen=True)
class Next:
    """The step a task schedules after its own."""

    step: Literal["submit", "poll", "fetch", "deliver"]
    part: int = 0
    countdown: float = 0.0


def load_job(runtime: Runtime, job_id: str) -> dict[str, str]:
    """The job's fields, or JobNotFound naming it."""
    return _found(runtime.store.job(job_id), job_id)


def _found(job: dict[str, str], job_id: str) -> dict[str, str]:
    if not job:
        raise JobNotFound(f"No job {job_id!r} in the store (finished longer ago than its TTL, or another store).")
    return job


# -- submit ---------------------------------------------------------------------------------------------------------
def submit(runtime: Runtime, job_id: str) -> Iterator[Next]:
    """Create every provider batch of a job that does not exist yet, exactly once each.

    It yields each part's next step as soon as that part is done, so a worker that dies on part 3 has already sent
    the polls of parts 0 to 2. A redelivered submit re-sends the next step of every part that is past creation.
    """
    store = runtime.store
    job = load_job(runtime, job_id)
    if BatchStatus(job["state"]).is_final:
        return
    if job["state"] == BatchStatus.PENDING:
        store.submit_seen(job_id)  # a submit is alive: the sweep sends none while it goes on
    provider = runtime.provider(job["model"])
    for n, part in enumerate(store.parts(job_id, int(job["parts"]))):
        if part["state"] == PartState.SUBMITTED:
            yield Next("poll", n)  # polling twice is harmless; a lost poll chain is not
            continue
        if part["state"] == PartState.ENDED:
            yield Next("fetch", n)
            continue
        if part["state"] != PartState.PENDING:
            continue
        if store.job(job_id).get("state") == BatchStatus.CANCELLING:
            _end_part(runtime, job_id, n, Snapshot("", "not_created", "cancelled"))
            yield Next("fetch", n)
            continue
        snapshot = _create_once(runtime, provider, job_id, n, part)
        if snapshot is None:  # another worker is creating it: look again once its claim may have gone stale
            yield Next("submit", countdown=runtime.settings.claim_timeout)
        elif snapshot.ended:
            _end_part(runtime, job_id, n, snapshot)
            yield Next("fetch", n)
        else:
            yield Next("poll", n)
    store.transition_job(job_id, BatchStatus.IN_PROGRESS, BatchStatus.PENDING)


def _create_once(runtime: Runtime, provider: Provider, job_id: str, n: int, part: dict[str, str]) -> Snapshot | None:
    """Create part `n` at the provider unless it was already; None when another worker may be creating it now."""
    store = runtime.store
    total, group = int(part["total"]), part.get("group", "")
    token = f"{uuid.uuid4().hex}:{time.time()}"
    if not store.claim_part(job_id, n, token):
        part = store.part(job_id, n)
        if part.get("provider_id"):
            return provider.status(part["provider_id"])
        claimed_at = float(part["claim"].rpartition(":")[2])
        claimer_gave_up = float(part.get("create_failed_at") or 0) >= claimed_at
        if not claimer_gave_up and time.time() - claimed_at < runtime.settings.claim_timeout:
            return None
        # The claimer died between claim and record. Only a listing can say whether it created the batch.
        try:
            found = provider.find(job_id, n)
        except MalformedAnswer as error:
            if not _poisoned(runtime, job_id, n, "find"):
                raise
            unfound = Snapshot("", "unknown", "failed", error=_UNFOUND.format(name=provider.name, error=error))
            _end_part(runtime, job_id, n, unfound)
            return unfound
        if found is not None:
            _record(runtime, job_id, n, found)
            return found
        if not provider.can_find:
            cause = f" The create call's answer: {part['create_error']}" if part.get("create_error") else ""
            lost = Snapshot("", "unknown", "failed", error=_LOST.format(name=provider.name) + cause)
            _end_part(runtime, job_id, n, lost)
            return lost
        store.set_part(job_id, n, claim=token)
    try:
        snapshot = provider.create(job_id, n, store.part_requests(job_id, n), total, group)
    except ProviderRejected as error:
        # Refused outright (a 4xx): no batch exists and nothing was spent; its requests carry the reason.
        rejected = Snapshot("", "rejected", "failed", total=total, error=str(error))
        _end_part(runtime, job_id, n, rejected)
        return rejected
    except TransientProviderError as error:
        # The answer was lost, an error or unreadable: the batch may exist. The retry lists the provider's batches
        # first; where they cannot be listed, the part ends failed with this cause rather than paying twice.
        store.set_part(job_id, n, create_failed_at=time.time(), create_error=str(error))
        raise
    _record(runtime, job_id, n, snapshot)
    log.info("job %s part %d: created provider batch %s", job_id, n, snapshot.id)
    return snapshot


_LOST = (
    "A worker stopped between creating this part's {name} batch and recording its id; {name} batches cannot be "
    "found by listing, so it was not created again to avoid paying twice."
)


_UNFOUND = (
    "This part's {name} batch may exist, but its create call's answer was lost and listing the batches to find it "
    "gave answers that could not be read ({error}); it was not created again to avoid paying twice."
)


def _record(runtime: Runtime, job_id: str, n: int, snapshot: Snapshot) -> None:
    runtime.store.set_part(job_id, n, provider_id=snapshot.id, **_snapshot_fields(snapshot))
    runtime.store.transition(runtime.store.part_key(job_id, n), PartState.SUBMITTED, PartState.PENDING)
    runtime.store.record_poll(job_id, n, counted=False)


def _snapshot_fields(snapshot: Snapshot) -> dict[str, str | int]:
    return {
        "provider_status": snapshot.status,
        "provider_state": snapshot.state,
        "completed": snapshot.completed,
        "failed": snapshot.failed,
        "error": snapshot.error or "",
        "details": orjson.dumps(snapshot.details).decode(),
    }


def _end_part(runtime: Runtime, job_id: str, n: int, snapshot: Snapshot) -> None:
    """Mark a part ended with the provider's final word, once: whoever ends it first is the one recorded."""
    store = runtime.store
    fields = _snapshot_fields(snapshot) | ({"provider_id": snapshot.id} if snapshot.id else {})
    store.transition(store.part_key(job_id, n), PartState.ENDED, PartState.PENDING, PartState.SUBMITTED, **fields)


def _snapshot_of(part: dict[str, str]) -> Snapshot:
    return Snapshot(
        id=part.get("provider_id", ""),
        status=part.get("provider_status", ""),
        state=part.get("provider_state", "running"),  # type: ignore[arg-type]
        total=int(part.get("total", 0)),
        completed=int(part.get("completed", 0)),
        failed=int(part.get("failed", 0)),
        error=part.get("error") or None,
        details=orjson.loads(part.get("details") or "{}"),
    )


# -- poll -----------------------------------------------------------------------------------------------------------
def poll(runtime: Runtime, job_id: str, n: int) -> Next | None:
    """Ask the provider about part `n` once; fetch it once it ended, else poll again after a growing interval."""
    store = runtime.store
    job, part = store.job_and_part(job_id, n)  # one round trip: a poll runs often
    _found(job, job_id)
    state = part.get("state")
    if state == PartState.ENDED:
        return Next("fetch", n)
    if state != PartState.SUBMITTED:
        return None  # not created yet (submit polls it when it is), or already stored
    deadline = float(job.get("deadline") or 0)
    if deadline and time.time() >= deadline and request_cancel(runtime, job_id):
        job = load_job(runtime, job_id)  # the job's timeout passed: this poll cancels the batch
    provider = runtime.provider(job["model"])
    try:
        snapshot = provider.status(part["provider_id"])
    except (MalformedAnswer, HostileAnswer) as error:
        # An answer that cannot be read, or that points where batchline must not go: tried a few times, then the
        # part ends failed with the cause, so the job ends and each of its requests carries it.
        if not isinstance(error, HostileAnswer) and not _poisoned(runtime, job_id, n, "poll"):
            raise
        _end_part(runtime, job_id, n, Snapshot(part["provider_id"], UNREADABLE, "failed", error=str(error)))
        return Next("fetch", n)
    except ProviderRejected as error:
        if error.status_code != 404:
            raise
        # Deleted at the provider (or never there): polling it again cannot help; its requests carry the reason.
        snapshot = Snapshot(part["provider_id"], NOT_FOUND, "failed", error=str(error))
        _end_part(runtime, job_id, n, snapshot)
        return Next("fetch", n)
    if job.get("state") == BatchStatus.CANCELLING and snapshot.state == "running":
        snapshot = provider.cancel(snapshot.id)
    polls = int(part.get("polls", 0))
    if snapshot.ended:
        store.record_poll(job_id, n)
        _end_part(runtime, job_id, n, snapshot)
        return Next("fetch", n)
    # A readable answer clears the poisoned tries: only answers unreadable one after another end a part.
    store.polled(job_id, n, PartState.SUBMITTED, **_snapshot_fields(snapshot), poll_poisoned=0)
    return Next("poll", n, countdown=poll_countdown(runtime, job, polls))


def poll_countdown(runtime: Runtime, job: dict[str, str], polls: int) -> float:
    """`poll_interval`, growing by half at every poll, capped (below the broker's visibility timeout)."""
    interval = float(job.get("poll_interval", 60.0)) * 1.5 ** max(polls - 1, 0)
    if polls == 0:
        interval = min(interval, 1.0)  # the first check comes soon: test batches and small ones end fast
    interval = min(interval, runtime.settings.max_poll_interval)
    deadline = float(job.get("deadline") or 0)
    if deadline:
        interval = max(0.0, min(interval, deadline - time.time()))
    return interval


# -- fetch ----------------------------------------------------------------------------------------------------------
def fetch(runtime: Runtime, job_id: str, n: int, progress: Callable[[int, int], None] | None = None) -> list[Next]:
    """Stream an ended part's results into the store, give every request it did not run a result, finish the job.

    Requests that expired or met a transient error go to a new part instead, while the job has resubmissions left.
    `progress(stored, total)` hears how far the part has got.
    """
    store = runtime.store
    job = load_job(runtime, job_id)
    part = store.part(job_id, n)
    if part.get("state") == PartState.ENDED:
        snapshot = _snapshot_of(part)
        provider = runtime.provider(job["model"])
        generation = int(part.get("generation", 0))
        resubmit = generation < int(job.get("max_resubmissions", 0)) and job["state"] != BatchStatus.CANCELLING
        retry: set[str] = set()

        def final(results: Iterable[tuple[str, str, bytes]]) -> Iterator[tuple[str, str, bytes]]:
            for custom_id, status, body in results:
                if resubmit and provider.is_transient(status, body):
                    retry.add(custom_id)
                else:
                    yield custom_id, status, body

        anomalies = 0
        if snapshot.id and snapshot.status not in (NOT_FOUND, UNREADABLE):
            total = int(part.get("total", 0))
            report = None if progress is None else (lambda stored: progress(stored, total))
            screen = Screen(set(store.part_ids(job_id, n)))
            stored = store.add_results(job_id, final(screen(provider.results(snapshot))), progress=report)
            log.info("job %s part %d: stored %d results", job_id, n, stored)
            anomalies = screen.anomalies
            if anomalies:
                log.warning(
                    "job %s part %d: %d result lines were anomalies (%s)", job_id, n, anomalies, screen.seen_kinds
                )
            if screen.error is not None and not _all_read(runtime, job_id, n, retry):
                poison = isinstance(screen.error, MalformedAnswer | BrokenDownload) or _gone(screen.error)
                final_now = isinstance(screen.error, HostileAnswer)
                if not final_now and (not poison or not _poisoned(runtime, job_id, n, "fetch")):
                    raise screen.error  # what was read is stored; the task tries again after its back-off
                # Poison that does not pass: the part ends failed, and each request without a result carries why.
                cause = f"The results of {provider.name} batch {snapshot.id} could not be read: {screen.error}"
                snapshot = dataclasses.replace(snapshot, state="failed", error=cause)
                store.set_part(job_id, n, provider_state="failed", error=cause)
            elif screen.error is not None:  # it broke off after the last result it owed (a Content-Length that lied)
                log.warning("job %s part %d: every result was read before: %s", job_id, n, screen.error)
        unrun_status, unrun_body = provider.unrun(snapshot)
        retry_unrun = resubmit and provider.is_transient(unrun_status, unrun_body)
        missing = list(store.missing_results(job_id, n))
        retry_ids = [cid for cid in missing if retry_unrun or cid in retry]
        store.add_results(job_id, [(cid, unrun_status, unrun_body) for cid in missing if cid not in retry_ids])
        if retry_ids:
            again = store.add_part(job_id, n, retry_ids, generation + 1)
            log.info("job %s part %d: %d requests go again in part %d", job_id, n, len(retry_ids), again)
        if store.transition(store.part_key(job_id, n), PartState.STORED, PartState.ENDED, anomalies=anomalies):
            if anomalies:
                store.count_anomalies(job_id, anomalies)
            if snapshot.id:
                provider.cleanup(snapshot)
        store.forget_poll(job_id, n)
        if retry_ids:
            return [Next("submit")]
    return [Next("deliver")] if finish(runtime, job_id) else []


def _gone(error: Exception) -> bool:
    """A results file the provider says is not there (404, 410): poison. Any other refusal (401, 403: a key being
    rotated, a proxy's rule) is waited for, slowly, as the task does with every refusal."""
    return isinstance(error, ProviderRejected) and error.status_code in (404, 410)


class Screen:
    """Lets through only results that belong to the part, once each; counts the rest as anomalies.

    A line that is not JSON, has no usable custom_id (the adapters give `UNUSABLE`), names an id outside the part or
    repeats one is never stored under a made-up key, so a job's counts never exceed its requests. An error raised
    while reading ends the stream quietly and is kept in `error`: what was read before it is still stored.
    """

    def __init__(self, owned: set[str]) -> None:
        self.owned = owned
        self.seen: set[str] = set()
        self.anomalies = 0
        self.seen_kinds: dict[str, int] = {}
        self.error: TransientProviderError | ProviderRejected | None = None

    def __call__(self, results: Iterable[tuple[str, str, bytes]]) -> Iterator[tuple[str, str, bytes]]:
        try:
            for custom_id, status, body in results:
                kind = self._anomaly(custom_id, status)
                if kind is None:
                    self.seen.add(custom_id)
                    yield custom_id, status, body
                else:
                    self.anomalies += 1
                    self.seen_kinds[kind] = self.seen_kinds.get(kind, 0) + 1
        except (TransientProviderError, ProviderRejected) as error:
            self.error = error

    def _anomaly(self, custom_id: object, status: object) -> str | None:
        if not isinstance(custom_id, str) or not custom_id:
            return "unreadable line"
        if custom_id not in self.owned:
            return "id outside the part"
        if custom_id in self.seen:
            return "repeated id"
        if status not in RESULT_TAGS:
            return "unknown status"
        return None


def _all_read(runtime: Runtime, job_id: str, n: int, retry: set[str]) -> bool:
    """Whether every request of part `n` has its result stored, or is set to go again."""
    return all(cid in retry for cid in runtime.store.missing_results(job_id, n))


def _poisoned(runtime: Runtime, job_id: str, n: int, step: str) -> bool:
    """Count one more poisoned try of `step` on part `n`; True once the tries are spent."""
    return runtime.store.strike(job_id, n, f"{step}_poisoned") >= POISON_ATTEMPTS


def finish(runtime: Runtime, job_id: str) -> bool:
    """End the job once every part is stored; True for the one caller that ended it."""
    store = runtime.store
    job = load_job(runtime, job_id)
    parts = store.parts(job_id, int(job["parts"]))
    if any(part.get("state") != PartState.STORED for part in parts):
        return False
    outcome = final_status(job, parts)
    if not store.transition_job(job_id, outcome, *_ACTIVE, completed_at=time.time()):
        return False
    store.drop_requests(job_id)
    store.touch(job_id, len(parts))
    log.info("job %s %s", job_id, outcome.value)
    return True


def final_status(job: dict[str, str], parts: list[dict[str, str]]) -> BatchStatus:
    states = {part.get("provider_state") for part in parts}
    if job.get("state") == BatchStatus.CANCELLING or "cancelled" in states:
        return BatchStatus.CANCELLED
    if states == {"failed"}:
        return BatchStatus.FAILED
    if states == {"expired"}:
        return BatchStatus.EXPIRED
    return BatchStatus.COMPLETED


# -- cancel ---------------------------------------------------------------------------------------------------------
def request_cancel(runtime: Runtime, job_id: str) -> bool:
    """Mark a running job as cancelling; the cancel task and the polls then stop its provider batches."""
    return runtime.store.transition_job(job_id, BatchStatus.CANCELLING, BatchStatus.PENDING, BatchStatus.IN_PROGRESS)


def cancel(runtime: Runtime, job_id: str) -> list[Next]:
    """Ask the provider to cancel every part of a cancelling job that has not ended."""
    store = runtime.store
    job = load_job(runtime, job_id)
    if job.get("state") != BatchStatus.CANCELLING:
        return []
    provider = runtime.provider(job["model"])
    nexts: list[Next] = []
    for n, part in enumerate(store.parts(job_id, int(job["parts"]))):
        if part.get("state") == PartState.SUBMITTED:
            snapshot = provider.cancel(part["provider_id"])
            if snapshot.ended:
                _end_part(runtime, job_id, n, snapshot)
                nexts.append(Next("fetch", n))
            else:
                nexts.append(Next("poll", n))
        elif part.get("state") == PartState.PENDING and store.claim_part(job_id, n, f"cancelled:{time.time()}"):
            _end_part(runtime, job_id, n, Snapshot("", "not_created", "cancelled"))
            nexts.append(Next("fetch", n))
    return nexts


# -- sweep ----------------------------------------------------------------------------------------------------------
def stale_polls(runtime: Runtime) -> list[tuple[str, int]]:
    """Parts whose last poll is older than the longest poll interval allows: their poll chain was lost."""
    older_than = time.time() - 2 * runtime.settings.max_poll_interval - runtime.settings.sweep_interval
    return runtime.store.stale_polls(older_than)


RESUBMITS_PER_SWEEP = 1000
"""At most this many submits are re-sent per sweep: a sweep stays a few round trips; the next one takes the rest."""


def submit_threshold(runtime: Runtime) -> float:
    """How long a `pending` job may go without a submit being sent or running before the sweep sends one.

    A live submit runs again within `claim_timeout` (its longest wait: another worker's claim going stale, and its
    back-off for a busy provider stays below it by default); one sweep interval of slack lets a queue that is a
    little slow not draw a second submit. A second one is safe anyway: parts are claimed before they are created.
    """
    return runtime.settings.claim_timeout + runtime.settings.sweep_interval


def stale_submits(runtime: Runtime, limit: int = RESUBMITS_PER_SWEEP) -> list[str]:
    """Jobs still `pending` whose submit has not been seen for `submit_threshold`: their submit message was lost
    (a Redis that lost its last writes kept the job but not the message). Each is marked as sent now, so a job
    whose submit is only slow gets one more per threshold, not one per sweep."""
    now = time.time()
    store = runtime.store
    stale = store.stale_pending(now - submit_threshold(runtime), limit, expired_before=now - store.ttl)
    for job_id in stale:
        store.submit_seen(job_id, now)
    return stale


def delivery_chunks(runtime: Runtime, job_id: str, size: int) -> Iterator[tuple[str, list[str]]]:
    """The custom_ids of a finished job in request order, `size` at a time, each with its delivered-marker."""
    chunk: list[str] = []
    number = 0
    for custom_id in runtime.store.request_ids(job_id):
        chunk.append(custom_id)
        if len(chunk) == size:
            yield f"chunk:{number}", chunk
            chunk, number = [], number + 1
    if chunk:
        yield f"chunk:{number}", chunk


def summary(runtime: Runtime, job_id: str) -> dict[str, Any]:
    """A job's counts and status, with no prompt and no result text: what tasks return and Flower shows."""
    job = load_job(runtime, job_id)
    return {
        "job_id": job_id,
        "status": job["state"],
        "total": int(job["total"]),
        "succeeded": int(job.get("succeeded", 0)),
        "failed": int(job.get("failed", 0)),
        "anomalies": int(job.get("anomalies", 0)),
    }

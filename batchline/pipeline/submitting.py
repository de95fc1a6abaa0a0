"""The submit step: create every provider batch of a job that does not exist yet, exactly once each."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from ..errors import BatchlineError, MalformedAnswer, ProviderRejected, TransientProviderError
from ..providers import Provider, Snapshot
from ..records import PartRecord, PartState
from ..runtime import Runtime
from ..types import BatchStatus
from . import caching
from .base import POISON_ATTEMPTS, Next, end_part, guarded, log, poisoned, record_created
from .claims import CANCEL, KeptClaim, is_live, new_claim
from .ending import UNCREATED, claimed_for_cancel, finish


def submit(runtime: Runtime, job_id: str) -> Iterator[Next]:
    """Create every provider batch of a job that does not exist yet, exactly once each.

    It yields each part's next step as soon as that part is done, so a worker that dies on part 3 has already sent
    the polls of parts 0 to 2. A redelivered submit re-sends the next step of every part that is past creation.
    """
    store = runtime.store
    job = store.load_job(job_id)
    if job.state.is_final:
        return
    if job.state == BatchStatus.PENDING:
        store.submit_seen(job_id)  # a submit is alive: the sweep sends none while it goes on
    provider = runtime.provider(job.model, job.endpoint)
    for n, part in enumerate(store.parts(job_id, job.parts)):
        if part.state == PartState.SUBMITTED:
            yield Next("poll", n)  # polling twice is harmless; a lost poll chain is not
            continue
        if part.state == PartState.ENDED:
            yield Next("fetch", n)
            continue
        if part.state != PartState.PENDING:
            continue
        if part.total == 0:  # its hash is gone (evicted, deleted by hand): an empty batch is never created
            log.error("job %s: part %d has no record in the store; it is not created", job_id, n)
            continue
        now = store.job(job_id)
        if now is not None and now.state == BatchStatus.CANCELLING:
            yield _cancelled_uncreated(runtime, provider, job_id, n)
            continue
        if job.cache:  # answered from the cache, split off to wait for another job, or sent as screened
            to_send, steps = caching.before_create(runtime, job_id, job, n, part)
            yield from steps
            if to_send is None:
                continue
            part = to_send
        store.record_poll(job_id, n, counted=False)  # a submit is on it: the sweep sends it none meanwhile
        snapshot = _create_once(runtime, provider, job_id, n, part)
        if snapshot is None:  # another worker is creating it: look again once its claim may have gone stale
            yield Next("submit", countdown=runtime.settings.claim_timeout)
        elif snapshot.ended:
            end_part(runtime, job_id, n, snapshot)
            yield Next("fetch", n)
        else:
            yield Next("poll", n)
    store.transition_job(job_id, BatchStatus.IN_PROGRESS, BatchStatus.PENDING)
    if job.cache and finish(runtime, job_id):  # the cache answered every request: nothing was sent
        yield Next("deliver")


def _create_once(runtime: Runtime, provider: Provider, job_id: str, n: int, part: PartRecord) -> Snapshot | None:
    """Create part `n` at the provider unless it was already; None when another worker may be creating it now."""
    store = runtime.store
    total, group = part.total, part.group
    token = new_claim()
    if not store.claim_part(job_id, n, token):
        part = store.part(job_id, n)
        if part.provider_id:
            snapshot = guarded("the batch's status", lambda: provider.status(part.provider_id))
            if part.state == PartState.PENDING:  # its creator stopped between keeping the id and marking it submitted
                record_created(runtime, job_id, n, snapshot)
            return snapshot
        if part.state != PartState.PENDING:
            return None  # ended with no batch since it was read (a cancel): the next look sends it on, creating none
        if is_live(part, runtime.settings.claim_timeout):
            return None
        # The claimer died between claim and record. Only a listing can say whether it created the batch.
        try:
            found = guarded("the provider's list of batches", lambda: provider.find(job_id, n))
        except MalformedAnswer as error:
            if not poisoned(runtime, job_id, n, "find"):
                raise
            unfound = Snapshot("", "unknown", "failed", error=_UNFOUND.format(name=provider.name, error=error))
            end_part(runtime, job_id, n, unfound)
            return unfound
        if found is not None:
            _keep(runtime, provider, job_id, n, found)
            return found
        if not provider.can_find:
            cause = f" The create call's answer: {part.create_error}" if part.create_error else ""
            lost = Snapshot("", "unknown", "failed", error=_LOST.format(name=provider.name) + cause)
            end_part(runtime, job_id, n, lost)
            return lost
        if (part.create_poisoned or 0) >= POISON_ATTEMPTS:
            # No create answer could be read, and the listing after the last one found no batch: not created again.
            unread = Snapshot(
                "", "unknown", "failed", error=_UNREAD.format(name=provider.name, error=part.create_error)
            )
            if not end_part(runtime, job_id, n, unread, since=(PartState.PENDING,)):
                return None  # another worker recorded a batch meanwhile: look again
            return unread
        token = new_claim()  # timed from the takeover, not from before the listing
        if not store.claim_part(job_id, n, token, over=part.claim):
            return None  # another worker took it over first: it creates, or finds, the batch
    kept = KeptClaim(store, job_id, n, token, runtime.settings.claim_timeout)
    try:
        with kept:
            snapshot = guarded(  # an answer that cannot be read: the batch may exist, so it is looked for before made
                "the answer to creating the batch",
                lambda: provider.create(job_id, n, store.part_requests(job_id, n), total, group),
            )
    except ProviderRejected as error:
        # Refused outright (a 4xx): no batch exists and nothing was spent; its requests carry the reason.
        rejected = Snapshot("", "rejected", "failed", total=total, error=str(error))
        end_part(runtime, job_id, n, rejected)
        return rejected
    except TransientProviderError as error:
        # The answer was lost, an error or unreadable: the batch may exist. The retry lists the provider's batches
        # first; where they cannot be listed, the part ends failed with this cause rather than paying twice.
        store.set_part(job_id, n, create_failed_by=kept.token, create_error=str(error))
        if isinstance(error, MalformedAnswer):
            store.strike(job_id, n, "create_poisoned")  # counted; the listing before the next create decides
        raise
    log.info("job %s part %d: created provider batch %s", job_id, n, snapshot.id)
    _keep(runtime, provider, job_id, n, snapshot)
    return snapshot


def _keep(runtime: Runtime, provider: Provider, job_id: str, n: int, snapshot: Snapshot) -> None:
    """Record a batch just made or found. One whose part left `pending` meanwhile with no batch or another one (a
    cancel ended it) is cancelled at the provider: it would run unread, and be paid for."""
    if record_created(runtime, job_id, n, snapshot) or runtime.store.part(job_id, n).provider_id == snapshot.id:
        return
    log.warning(
        "job %s part %d: provider batch %s was made after the part ended; it is cancelled", job_id, n, snapshot.id
    )
    with contextlib.suppress(BatchlineError):
        guarded("the answer to cancelling the batch", lambda: provider.cancel(snapshot.id))


def _cancelled_uncreated(runtime: Runtime, provider: Provider, job_id: str, n: int) -> Next:
    """A part of a cancelling job not created yet: ended uncreated once the cancel holds its claim.

    A live create's claim is waited for (ending the part under it left its batch running unread): its batch is
    recorded, then its poll cancels it. A create that failed or whose worker died may have made the batch: it is
    looked for first, and a batch found is recorded for its poll to cancel; where batches cannot be listed, the part
    ends saying the batch may exist."""
    store = runtime.store
    if claimed_for_cancel(runtime, job_id, n):
        end_part(runtime, job_id, n, UNCREATED)
        return Next("fetch", n)
    part = store.part(job_id, n)
    if part.state != PartState.PENDING:
        return Next("poll", n) if part.state == PartState.SUBMITTED else Next("fetch", n)
    if is_live(part, runtime.settings.claim_timeout):
        return Next("submit", countdown=runtime.settings.claim_timeout)
    store.record_poll(job_id, n, counted=False)  # a submit is on it: the sweep sends it none meanwhile
    found, unsure = None, None if provider.can_find else f"{provider.name} batches cannot be found by listing"
    if provider.can_find:
        try:
            found = guarded("the provider's list of batches", lambda: provider.find(job_id, n))
        except (MalformedAnswer, ProviderRejected) as error:
            # A listing that cannot be read or is refused (a gateway without it): tried a few times, then given up.
            if not poisoned(runtime, job_id, n, "find"):
                raise
            unsure = f"listing the {provider.name} batches to find it failed ({error})"
    if found is not None:
        _keep(runtime, provider, job_id, n, found)
        return Next("poll", n)
    if not store.claim_part(job_id, n, new_claim(CANCEL), over=part.claim):
        return Next("submit", countdown=runtime.settings.claim_timeout)  # taken meanwhile: looked at again
    maybe = None if unsure is None else _MAYBE.format(name=provider.name, why=unsure)
    end_part(runtime, job_id, n, dataclasses.replace(UNCREATED, error=maybe))
    return Next("fetch", n)


_MAYBE = (
    "The job was cancelled while this part's create had failed or its worker had stopped, and {why}: a batch that "
    "create may have made runs on at {name}, unread; look for it there."
)


_LOST = (
    "A worker stopped between creating this part's {name} batch and recording its id; {name} batches cannot be "
    "found by listing, so it was not created again to avoid paying twice."
)


_UNFOUND = (
    "This part's {name} batch may exist, but its create call's answer was lost and listing the batches to find it "
    "gave answers that could not be read ({error}); it was not created again to avoid paying twice."
)


_UNREAD = (
    "Every answer to creating this part's {name} batch could not be read ({error}), and listing the batches found "
    "none of them; it was not created again."
)

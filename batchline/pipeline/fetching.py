"""The fetch step: store an ended part's results, give every request it did not run a result, finish the job."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator

from ..costs import usage_reader
from ..errors import (
    BatchlineError,
    BrokenDownload,
    HostileAnswer,
    MalformedAnswer,
    ProviderRejected,
    TransientProviderError,
    for_log,
)
from ..records import RESULT_TAGS, PartState, ReadResult
from ..runtime import Runtime
from ..telemetry import record_fetch, record_part, tally_for
from ..types import BatchStatus
from . import budget, caching
from .base import DELIVERED, NOT_FOUND, OVERDUE, PARSE_ERRORS, UNREADABLE, Next, log, poisoned, snapshot_of, unforeseen
from .ending import finish


def fetch(runtime: Runtime, job_id: str, n: int, progress: Callable[[int, int], None] | None = None) -> list[Next]:
    """Stream an ended part's results into the store, give every request it did not run a result, finish the job.

    Requests that expired or met a transient error go to a new part instead, while the job has resubmissions left.
    `progress(stored, total)` hears how far the part has got.
    """
    store = runtime.store
    job = store.load_job(job_id)
    part = store.part(job_id, n)
    if part.state == PartState.ENDED:
        snapshot = snapshot_of(part)
        provider = runtime.provider(job.model, job.endpoint)
        generation = part.generation
        resubmit = generation < job.max_resubmissions and job.state != BatchStatus.CANCELLING
        retry: set[str] = set()

        def final(results: Iterable[ReadResult]) -> Iterator[ReadResult]:
            for result in results:
                if resubmit and provider.is_transient(result[1], result[2]):
                    retry.add(result[0])
                else:
                    yield result

        anomalies = 0
        if snapshot.id and snapshot.status not in (NOT_FOUND, UNREADABLE, OVERDUE):
            total = part.total
            report = None if progress is None else (lambda stored: progress(stored, total))
            screen = Screen(set(store.part_ids(job_id, n)))
            tally = tally_for(runtime, provider.name)  # token usage for the span, with instrumentation on
            results = final(screen(provider.read_results(snapshot)))
            results = tally(results) if tally else results
            reader = None if tally else usage_reader(provider.name)  # the tally gives each result its tokens
            stored = store.add_results(job_id, results, progress=report, usage=reader)
            record_fetch(runtime, job, tally)
            log.info("job %s part %d: stored %d results", job_id, n, stored)
            anomalies = screen.anomalies
            if anomalies:
                log.warning(
                    "job %s part %d: %d result lines were anomalies (%s)", job_id, n, anomalies, screen.seen_kinds
                )
            if screen.error is not None and not _all_read(runtime, job_id, n, retry):
                poison = isinstance(screen.error, MalformedAnswer | BrokenDownload) or _gone(screen.error)
                final_now = isinstance(screen.error, HostileAnswer)
                if not final_now and (not poison or not poisoned(runtime, job_id, n, "fetch")):
                    raise screen.error  # what was read is stored; the task tries again after its back-off
                # Poison that does not pass: the part ends failed, and each request without a result carries why.
                cause = f"The results of {provider.name} batch {snapshot.id} could not be read: {screen.error}"
                snapshot = dataclasses.replace(snapshot, state="failed", error=cause)
                store.set_part(job_id, n, provider_state="failed", error=cause)
            elif screen.error is not None:  # it broke off after the last result it owed (a Content-Length that lied)
                log.warning("job %s part %d: every result was read before: %s", job_id, n, for_log(screen.error))
        unrun_status, unrun_body = provider.unrun(snapshot)
        retry_unrun = resubmit and provider.is_transient(unrun_status, unrun_body)
        missing = list(store.missing_results(job_id, n))
        retry_ids = [cid for cid in missing if retry_unrun or cid in retry]
        store.add_results(job_id, [(cid, unrun_status, unrun_body) for cid in missing if cid not in retry_ids])
        if retry_ids:
            again = store.add_part(job_id, n, retry_ids, generation + 1)
            store.record_poll(job_id, again, counted=False)  # the sweep sends its submit again if it is lost
            log.info("job %s part %d: %d requests go again in part %d", job_id, n, len(retry_ids), again)
        if job.cache:  # before the part is stored: a fetch that dies here runs again and shares them then
            caching.settle(runtime, job_id, job, n)
        if store.transition_part(job_id, n, PartState.STORED, PartState.ENDED, anomalies=anomalies):
            record_part(runtime, job.model, "stored")
            if anomalies:
                store.count_anomalies(job_id, anomalies)
            if snapshot.id:
                provider.cleanup(snapshot)
        store.forget_poll(job_id, n)
        stop = budget.enforce(runtime, job_id)  # the usage just stored may pass the job's max_cost
        if retry_ids or stop:
            return [*stop, *([Next("submit")] if retry_ids else [])]
    if finish(runtime, job_id):
        return [Next("deliver")]
    return _owed(runtime, job_id) if part.state == PartState.STORED else []


def _owed(runtime: Runtime, job_id: str) -> list[Next]:
    """What the first fetch of a part stored before may not have sent (its worker died, or Redis lost the message,
    after the part was stored): the submit of the part it resubmits, or the job's delivery. Both are safe twice."""
    store = runtime.store
    job = store.load_job(job_id)
    if job.state.is_final:
        return [] if store.is_delivered(job_id, DELIVERED) else [Next("deliver")]
    if any(part.state == PartState.PENDING for part in store.parts(job_id, job.parts)):
        return [Next("submit")]
    return []


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

    def __call__(self, results: Iterable[ReadResult]) -> Iterator[ReadResult]:
        try:
            for result in results:
                kind = self._anomaly(result[0], result[1])
                if kind is None:
                    self.seen.add(result[0])
                    yield result
                else:
                    self.anomalies += 1
                    self.seen_kinds[kind] = self.seen_kinds.get(kind, 0) + 1
        except (TransientProviderError, ProviderRejected) as error:
            self.error = error
        except BatchlineError:
            raise
        except PARSE_ERRORS as error:  # what was read before it is stored; bounded tries, then the part fails
            self.error = unforeseen("the results stream", error)

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

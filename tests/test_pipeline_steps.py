"""Each pipeline step on its own, on fakeredis with the `test` provider: what it does to the store, what it answers.

The Celery tasks are thin wrappers around these functions; here each step runs by hand, once or twice (a message
redelivered), and the test reads what it left in the store and which `Next` steps it asked for. The `test` provider's
batches live in the same Redis: a batch runs until `end_at_provider` ends it, and `creates` counts what was paid for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import fakeredis
import orjson
import pytest
import redis
from pydantic_ai import ModelRequest
from pydantic_ai.models.batch import BatchRequest

from batchline import pipeline
from batchline.config import KEYS_MARGIN, OVERDUE_GRACE, Settings
from batchline.errors import BrokenDownload, HostileAnswer, MalformedAnswer, ProviderRejected, TransientProviderError
from batchline.pipeline import POISON_ATTEMPTS, Next, Screen, polling, submitting
from batchline.pipeline.base import end_part
from batchline.providers.base import Snapshot
from batchline.providers.test import FLAKY_MARKER, TestProvider
from batchline.records import JobRecord, PartRecord, PartState, ReadResult
from batchline.runtime import Runtime
from batchline.store import Store
from batchline.types import BatchStatus

from .conftest import announced, store_job

TTL = 3600
SETTINGS = Settings(
    claim_timeout=600, sweep_interval=300, max_poll_interval=300, ttl_seconds=2 * 86400, test_delay=TTL
)  # a `test` batch runs until the test ends it; the store's keys live TTL


# -- reading and writing job and part records ------------------------------------------------------------------------
def job_record(runtime: Runtime, job_id: str) -> JobRecord:
    return runtime.store.load_job(job_id)


def part_records(runtime: Runtime, job_id: str) -> list[PartRecord]:
    return runtime.store.parts(job_id, job_record(runtime, job_id).parts)


def job_field(runtime: Runtime, job_id: str, name: str) -> Any:
    return getattr(job_record(runtime, job_id), name)


def part_field(runtime: Runtime, job_id: str, n: int, name: str) -> Any:
    return getattr(runtime.store.part(job_id, n), name)


def set_job_fields(runtime: Runtime, job_id: str, **fields: Any) -> None:
    """Edit fields of a stored job in place, as they are kept in its hash."""
    changed = replace(job_record(runtime, job_id), **fields).to_hash()
    runtime.store.redis.hset(runtime.store.job_key(job_id), mapping={name: changed[name] for name in fields})


def records_of(job_state: str, *provider_states: str) -> tuple[JobRecord, list[PartRecord]]:
    """A job record and its parts' records with only the fields `final_status` reads."""
    job = JobRecord(model="test:x", total=len(provider_states), created_at=0.0, state=BatchStatus(job_state))
    return job, [PartRecord(provider_state=state) for state in provider_states]


# -- setting up --------------------------------------------------------------------------------------------------------
def make_runtime(**changes: object) -> Runtime:
    settings = replace(SETTINGS, **changes)  # type: ignore[arg-type]
    return Runtime(settings, Store(fakeredis.FakeRedis(), "ps:", ttl_seconds=TTL))


@pytest.fixture
def runtime() -> Runtime:
    return make_runtime()


@pytest.fixture
def parts_of_two(monkeypatch: pytest.MonkeyPatch) -> None:
    """The `test` provider takes two requests per batch: a job of five has three parts."""
    monkeypatch.setattr(TestProvider, "max_requests", 2)


def new_job(runtime: Runtime, count: int = 3, prompt: str = "question") -> str:
    asks = [
        BatchRequest(custom_id=f"r{i}", messages=[ModelRequest.user_text_prompt(f"{prompt} {i}")]) for i in range(count)
    ]
    return store_job(runtime, "test", asks)


def creates(runtime: Runtime, job_id: str, n: int = 0) -> int:
    """How many provider batches the `test` provider created for part `n`."""
    return int(runtime.store.redis.hget(f"{runtime.store.prefix}test:creates", f"{job_id}:{n}") or 0)


def end_at_provider(runtime: Runtime, job_id: str, n: int = 0) -> None:
    """The provider finishes part `n`'s batch: its next status answer says it completed."""
    batch = part_field(runtime, job_id, n, "provider_id")
    runtime.store.redis.hset(f"{runtime.store.prefix}test:batch:{batch}", "delay", 0)


def submitted(runtime: Runtime, job_id: str) -> list[Next]:
    return list(pipeline.submit(runtime, job_id))


def results_stored(runtime: Runtime, job_id: str) -> int:
    return runtime.store.result_count(job_id)


def ended_job(runtime: Runtime, count: int = 3) -> str:
    """A job whose only part was created and has ended at the provider, not yet fetched."""
    job_id = new_job(runtime, count)
    submitted(runtime, job_id)
    end_at_provider(runtime, job_id)
    assert pipeline.poll(runtime, job_id, 0) == Next("fetch", 0)
    return job_id


@pytest.fixture
def calls(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often each of the `test` provider's transport calls ran."""
    counted: dict[str, int] = {}
    provider = runtime.provider("test")
    for name in ("create", "status", "cancel", "read_results"):
        original = getattr(provider, name)

        def counting(*args: Any, _name: str = name, _original: Any = original) -> Any:
            counted[_name] = counted.get(_name, 0) + 1
            return _original(*args)

        monkeypatch.setattr(provider, name, counting)
    return counted


# -- submit ------------------------------------------------------------------------------------------------------------
def test_submit_creates_each_part_once_and_sends_its_poll(runtime: Runtime, parts_of_two: None) -> None:
    job_id = new_job(runtime, count=5)
    assert job_field(runtime, job_id, "parts") == 3
    assert submitted(runtime, job_id) == [Next("poll", 0), Next("poll", 1), Next("poll", 2)]
    assert [creates(runtime, job_id, n) for n in range(3)] == [1, 1, 1]
    assert [part_field(runtime, job_id, n, "state") for n in range(3)] == [PartState.SUBMITTED] * 3
    assert all(part_field(runtime, job_id, n, "provider_id").startswith("batch_test_") for n in range(3))
    assert job_field(runtime, job_id, "state") == BatchStatus.IN_PROGRESS


def test_a_second_submit_creates_nothing_and_sends_each_poll_again(runtime: Runtime, parts_of_two: None) -> None:
    job_id = new_job(runtime, count=5)
    first = submitted(runtime, job_id)
    ids = [part_field(runtime, job_id, n, "provider_id") for n in range(3)]
    # A redelivered submit: a lost poll chain would be worse than a second one.
    assert submitted(runtime, job_id) == first
    assert [creates(runtime, job_id, n) for n in range(3)] == [1, 1, 1]
    assert [part_field(runtime, job_id, n, "provider_id") for n in range(3)] == ids


def test_a_part_that_ended_at_creation_goes_to_fetch() -> None:
    runtime = make_runtime(test_delay=0)  # the provider finishes a batch as it creates it
    job_id = new_job(runtime)
    assert submitted(runtime, job_id) == [Next("fetch", 0)]
    assert part_field(runtime, job_id, 0, "state") == PartState.ENDED
    assert submitted(runtime, job_id) == [Next("fetch", 0)]  # and again when redelivered, with no second create
    assert creates(runtime, job_id) == 1


def test_a_submit_of_an_ended_job_does_nothing(runtime: Runtime) -> None:
    job_id = new_job(runtime)
    assert runtime.store.transition_job(job_id, BatchStatus.FAILED, BatchStatus.PENDING)
    assert submitted(runtime, job_id) == []
    assert creates(runtime, job_id) == 0
    assert part_field(runtime, job_id, 0, "state") == PartState.PENDING


def test_a_submit_of_a_cancelling_job_creates_nothing(runtime: Runtime) -> None:
    job_id = new_job(runtime)
    assert pipeline.request_cancel(runtime, job_id)
    assert submitted(runtime, job_id) == [Next("fetch", 0)]
    assert creates(runtime, job_id) == 0
    assert part_field(runtime, job_id, 0, "provider_state") == "cancelled"


def test_a_part_another_worker_is_creating_is_looked_at_again_later(runtime: Runtime) -> None:
    job_id = new_job(runtime)
    assert runtime.store.claim_part(job_id, 0, f"another-worker:{time.time()}")
    assert submitted(runtime, job_id) == [Next("submit", countdown=SETTINGS.claim_timeout)]
    assert creates(runtime, job_id) == 0


def test_a_stale_claim_whose_batch_was_created_is_recorded_not_created_again(runtime: Runtime) -> None:
    """The claimer created the batch and died before recording its id: the provider's listing finds it."""
    job_id = new_job(runtime)
    stale = time.time() - SETTINGS.claim_timeout - 1
    assert runtime.store.claim_part(job_id, 0, f"dead-worker:{stale}")
    created = runtime.provider("test").create(job_id, 0, runtime.store.part_requests(job_id, 0), 3)
    assert submitted(runtime, job_id) == [Next("poll", 0)]
    assert creates(runtime, job_id) == 1
    assert part_field(runtime, job_id, 0, "provider_id") == created.id


def test_a_stale_claim_with_no_batch_creates_it_once(runtime: Runtime) -> None:
    job_id = new_job(runtime)
    assert runtime.store.claim_part(job_id, 0, f"dead-worker:{time.time() - SETTINGS.claim_timeout - 1}")
    assert submitted(runtime, job_id) == [Next("poll", 0)]
    assert submitted(runtime, job_id) == [Next("poll", 0)]
    assert creates(runtime, job_id) == 1


def test_two_workers_taking_over_a_stale_claim_at_once_create_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both list the batches, both find none: before, both then wrote their claim and both created (paid twice)."""
    job_id = new_job(runtime)
    assert runtime.store.claim_part(job_id, 0, f"dead-worker:{time.time() - SETTINGS.claim_timeout - 1}")
    provider = runtime.provider("test")
    find = provider.find
    both_listed = threading.Barrier(2, timeout=10)

    def listing_together(job_id: str, part: int) -> Snapshot | None:
        found = find(job_id, part)
        both_listed.wait()
        return found

    monkeypatch.setattr(provider, "find", listing_together)
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: submitted(runtime, job_id), range(2)))
    assert sorted(map(str, outcomes)) == sorted(
        map(str, [[Next("poll", 0)], [Next("submit", countdown=SETTINGS.claim_timeout)]])
    )
    assert creates(runtime, job_id) == 1


def test_a_failure_written_before_a_takeover_never_makes_the_new_claim_look_given_up(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker A's create fails while worker B is about to take A's claim over. A claim looked given up when any
    create had failed after its time, so worker C took B's claim over while B was still creating, and created too."""
    job_id = new_job(runtime)
    store = runtime.store
    assert store.claim_part(job_id, 0, f"worker-a:{time.time()}")  # A holds the claim; its create is in flight
    provider = runtime.provider("test")
    create = provider.create
    seen_by_c: list[list[Next]] = []

    def a_fails_meanwhile(self: Store, job_id: str, n: int, token: str, over: str = "") -> bool:
        won = claim(self, job_id, n, token, over)
        if not over and not won:  # B found the claim held: A's answer comes back as lost just then
            store.set_part(job_id, 0, create_failed_by=f"worker-a:{a_time}")
        return won

    def b_creates_slowly(*args: Any, **kwargs: Any) -> Snapshot:
        if not seen_by_c:
            seen_by_c.append(submitted(runtime, job_id))  # C comes while B's create is on its way
        return create(*args, **kwargs)

    a_time = store.part(job_id, 0).claim.rpartition(":")[2]
    claim = Store.claim_part
    monkeypatch.setattr(Store, "claim_part", a_fails_meanwhile)
    monkeypatch.setattr(provider, "create", b_creates_slowly)
    assert submitted(runtime, job_id) == [Next("poll", 0)]  # B took A's claim over and created
    assert seen_by_c == [[Next("submit", countdown=SETTINGS.claim_timeout)]]  # C waits for B instead
    assert creates(runtime, job_id) == 1


def test_a_submit_that_read_a_part_before_a_cancel_ended_it_creates_nothing(runtime: Runtime) -> None:
    """A slow submit read the part as pending; a cancel then claimed and ended it. Once the cancel's claim had gone
    stale, the submit listed the batches, found none, took the claim over and created a batch for the ended part."""
    job_id = new_job(runtime)
    store = runtime.store
    read_before = store.part(job_id, 0)
    assert store.claim_part(job_id, 0, f"cancelled:{time.time() - SETTINGS.claim_timeout - 1}")
    assert end_part(runtime, job_id, 0, Snapshot("", "not_created", "cancelled"))
    assert submitting._create_once(runtime, runtime.provider("test"), job_id, 0, read_before) is None
    assert creates(runtime, job_id) == 0
    assert part_field(runtime, job_id, 0, "state") == PartState.ENDED


def test_a_submit_that_died_recording_its_batch_leaves_no_half_record_and_the_batch_is_found(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The id and the state were two writes: a worker dying between them left a part pending with an id, which the
    next submit sent a poll for, and the poll took it for one not created: the chain ended, and the job never did."""
    job_id = new_job(runtime)
    transition = Store.transition_part

    def killed(self: Store, job_id: str, n: int, to: PartState, *since: PartState, **also: Any) -> bool:
        if to == PartState.SUBMITTED:
            raise SystemExit("worker killed")
        return transition(self, job_id, n, to, *since, **also)

    monkeypatch.setattr(Store, "transition_part", killed)
    with pytest.raises(SystemExit):
        submitted(runtime, job_id)
    monkeypatch.setattr(Store, "transition_part", transition)
    assert (part_field(runtime, job_id, 0, "state"), part_field(runtime, job_id, 0, "provider_id")) == (
        PartState.PENDING,
        "",
    )
    stale = f"dead-worker:{time.time() - SETTINGS.claim_timeout - 1}"
    runtime.store.set_part(job_id, 0, claim=stale)
    assert submitted(runtime, job_id) == [Next("poll", 0)]  # found by listing, recorded
    end_at_provider(runtime, job_id, 0)
    assert pipeline.poll(runtime, job_id, 0) == Next("fetch", 0)
    assert creates(runtime, job_id) == 1


def test_a_part_an_older_batchline_left_pending_with_its_batch_id_is_recorded_by_the_next_submit(
    runtime: Runtime,
) -> None:
    job_id = new_job(runtime)
    store = runtime.store
    batch = runtime.provider("test").create(job_id, 0, store.part_requests(job_id, 0), 3)
    assert store.claim_part(job_id, 0, f"older-worker:{time.time()}")
    store.set_part(job_id, 0, provider_id=batch.id)  # the id written; the worker died before the state
    assert submitted(runtime, job_id) == [Next("poll", 0)]
    assert part_field(runtime, job_id, 0, "state") == PartState.SUBMITTED
    end_at_provider(runtime, job_id, 0)
    assert pipeline.poll(runtime, job_id, 0) == Next("fetch", 0)
    assert creates(runtime, job_id) == 1


def test_a_cancel_that_died_between_its_claim_and_ending_the_part_is_finished_by_its_redelivery(
    runtime: Runtime, parts_of_two: None
) -> None:
    """The redelivered cancel could not claim the part (its own claim held it): the part stayed pending, and a part
    waiting for the cache, with no submit to end it, kept its job cancelling for ever."""
    job_id = new_job(runtime, count=4)
    assert runtime.store.claim_part(job_id, 1, f"later:{time.time()}")
    submitted(runtime, job_id)  # part 0 created; part 1 waits on another worker's claim
    runtime.store.redis.hdel(runtime.store.part_key(job_id, 1), "claim")
    assert pipeline.request_cancel(runtime, job_id)
    assert runtime.store.claim_part(job_id, 1, f"cancelled:{time.time()}")  # the cancel's claim, then it died
    assert Next("fetch", 1) in pipeline.cancel(runtime, job_id)
    assert (part_field(runtime, job_id, 1, "state"), part_field(runtime, job_id, 1, "provider_state")) == (
        PartState.ENDED,
        "cancelled",
    )
    assert creates(runtime, job_id, 1) == 0


def test_a_create_slower_than_the_claim_timeout_keeps_its_claim_and_no_other_worker_creates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An upload longer than claim_timeout made the claim look like a dead worker's: a second submit listed the
    batches, found none (the batch is made once the upload ends), took the claim over and created one too."""
    runtime = make_runtime(claim_timeout=0.3)
    job_id = new_job(runtime)
    provider = runtime.provider("test")
    create = provider.create
    seen_by_second: list[list[Next]] = []
    uploads = iter([1.0])  # the first create's upload takes over three claim timeouts

    def slow_upload(*args: Any, **kwargs: Any) -> Snapshot:
        if (seconds := next(uploads, None)) is not None:
            time.sleep(seconds)
            seen_by_second.append(submitted(runtime, job_id))  # a second submit (the sweep's) comes meanwhile
        return create(*args, **kwargs)

    monkeypatch.setattr(provider, "create", slow_upload)
    assert submitted(runtime, job_id) == [Next("poll", 0)]
    assert seen_by_second == [[Next("submit", countdown=0.3)]]  # it waits for the live claim
    assert creates(runtime, job_id) == 1


def test_a_cancel_that_ends_the_part_while_a_takeover_lists_is_not_overridden(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim is taken over only while the part is pending, in the same step: a cancel ending the part while the
    taking-over worker lists the batches leaves it nothing to claim."""
    job_id = new_job(runtime)
    store = runtime.store
    assert store.claim_part(job_id, 0, f"dead-worker:{time.time() - SETTINGS.claim_timeout - 1}")
    provider = runtime.provider("test")
    find = provider.find

    def a_cancel_ends_it_meanwhile(job_id: str, n: int) -> Snapshot | None:
        end_part(runtime, job_id, n, Snapshot("", "not_created", "cancelled"))
        return find(job_id, n)

    monkeypatch.setattr(provider, "find", a_cancel_ends_it_meanwhile)
    assert submitting._create_once(runtime, provider, job_id, 0, store.part(job_id, 0)) is None
    assert creates(runtime, job_id) == 0


def test_a_submit_of_a_cancelling_job_waits_for_a_live_create_and_its_batch_is_then_cancelled(
    runtime: Runtime,
) -> None:
    """Ending the part under a create still on its way left that create's batch running unread, and paid for."""
    job_id = new_job(runtime)
    store = runtime.store
    assert store.claim_part(job_id, 0, f"worker-a:{time.time()}")  # A is uploading
    assert pipeline.request_cancel(runtime, job_id)
    assert submitted(runtime, job_id) == [Next("submit", countdown=SETTINGS.claim_timeout)]  # B waits for A
    assert part_field(runtime, job_id, 0, "state") == PartState.PENDING
    batch = runtime.provider("test").create(job_id, 0, store.part_requests(job_id, 0), 3)  # A's create returns
    submitting._keep(runtime, runtime.provider("test"), job_id, 0, batch)
    assert pipeline.poll(runtime, job_id, 0) == Next("fetch", 0)  # the poll cancels it
    assert part_field(runtime, job_id, 0, "provider_state") == "cancelled"


def test_a_cancelled_part_whose_create_failed_is_looked_for_and_its_batch_cancelled(runtime: Runtime) -> None:
    """The create reached the provider but its answer was lost; then the job was cancelled. The part was ended
    uncreated without a look, and the batch ran on at the provider, unread and paid for."""
    job_id = new_job(runtime)
    store = runtime.store
    claim = f"worker-a:{time.time()}"
    assert store.claim_part(job_id, 0, claim)
    batch = runtime.provider("test").create(job_id, 0, store.part_requests(job_id, 0), 3)  # made; the answer lost
    store.set_part(job_id, 0, create_failed_by=claim)
    assert pipeline.request_cancel(runtime, job_id)
    assert submitted(runtime, job_id) == [Next("poll", 0)]  # found by listing, recorded
    assert part_field(runtime, job_id, 0, "provider_id") == batch.id
    assert pipeline.poll(runtime, job_id, 0) == Next("fetch", 0)  # and cancelled by its poll
    assert runtime.provider("test").status(batch.id).state == "cancelled"
    assert creates(runtime, job_id) == 1


def test_a_cancelled_part_whose_create_failed_where_batches_cannot_be_listed_says_the_batch_may_exist(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = new_job(runtime)
    store = runtime.store
    claim = f"worker-a:{time.time()}"
    assert store.claim_part(job_id, 0, claim)
    store.set_part(job_id, 0, create_failed_by=claim)
    monkeypatch.setattr(TestProvider, "can_find", False)
    assert pipeline.request_cancel(runtime, job_id)
    assert submitted(runtime, job_id) == [Next("fetch", 0)]
    assert part_field(runtime, job_id, 0, "provider_state") == "cancelled"
    assert "may have made runs on at test, unread" in part_field(runtime, job_id, 0, "error")


def test_a_cancelled_part_whose_listing_keeps_failing_ends_after_a_few_tries(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing that cannot be read (or that a gateway refuses) every time kept the part pending, its job cancelling,
    with the submit retrying for ever."""
    job_id = new_job(runtime)
    store = runtime.store
    claim = f"worker-a:{time.time()}"
    assert store.claim_part(job_id, 0, claim)
    store.set_part(job_id, 0, create_failed_by=claim)
    assert pipeline.request_cancel(runtime, job_id)

    def unreadable(job_id: str, n: int) -> Snapshot | None:
        raise MalformedAnswer("test: the list of batches is not JSON")

    monkeypatch.setattr(runtime.provider("test"), "find", unreadable)
    for _ in range(POISON_ATTEMPTS - 1):
        with pytest.raises(MalformedAnswer):
            submitted(runtime, job_id)
    assert submitted(runtime, job_id) == [Next("fetch", 0)]
    assert part_field(runtime, job_id, 0, "provider_state") == "cancelled"
    assert "listing the test batches to find it failed" in part_field(runtime, job_id, 0, "error")


def test_a_batch_made_after_a_cancel_ended_its_part_is_cancelled_at_the_provider(runtime: Runtime) -> None:
    job_id = new_job(runtime)
    store = runtime.store
    provider = runtime.provider("test")
    batch = provider.create(job_id, 0, store.part_requests(job_id, 0), 3)  # a create whose claim went stale ...
    assert end_part(runtime, job_id, 0, Snapshot("", "not_created", "cancelled"))  # ... and a cancel ended the part
    submitting._keep(runtime, provider, job_id, 0, batch)
    assert provider.status(batch.id).state == "cancelled"  # not left running unread
    assert (part_field(runtime, job_id, 0, "state"), part_field(runtime, job_id, 0, "provider_id")) == (
        PartState.ENDED,
        "",
    )


def test_a_submit_keeps_the_poll_record_of_a_part_it_is_creating_fresh(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A submit retrying through a provider outage did not refresh it: every stale-poll sweep sent one more submit
    chain, each retrying for as long as the outage lasted."""
    job_id = new_job(runtime)
    runtime.store.record_poll(job_id, 0, counted=False)
    runtime.store.redis.zadd(f"{runtime.store.prefix}polls", {f"{job_id}:0": 1.0})  # long ago
    assert pipeline.stale_polls(later(runtime)) == [(job_id, 0)]

    def outage(*args: object) -> Snapshot:
        raise TransientProviderError("test: 503")

    monkeypatch.setattr(runtime.provider("test"), "create", outage)
    with pytest.raises(TransientProviderError):
        submitted(runtime, job_id)
    assert pipeline.stale_polls(runtime) == []


def test_a_refused_create_ends_the_part_failed(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = new_job(runtime)

    def refused(*args: object) -> Snapshot:
        raise ProviderRejected("test: 400 bad model", 400)

    monkeypatch.setattr(runtime.provider("test"), "create", refused)
    assert submitted(runtime, job_id) == [Next("fetch", 0)]
    assert part_field(runtime, job_id, 0, "state") == PartState.ENDED
    assert (part_field(runtime, job_id, 0, "provider_state"), part_field(runtime, job_id, 0, "error")) == (
        "failed",
        "test: 400 bad model",
    )


def test_a_create_whose_answer_was_lost_is_retried_and_noted(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = new_job(runtime)

    def lost(*args: object) -> Snapshot:
        raise TransientProviderError("test: 503")

    monkeypatch.setattr(runtime.provider("test"), "create", lost)
    with pytest.raises(TransientProviderError):
        submitted(runtime, job_id)  # the task retries after its back-off
    assert part_field(runtime, job_id, 0, "state") == PartState.PENDING
    assert part_field(runtime, job_id, 0, "create_error") == "test: 503"
    assert job_field(runtime, job_id, "state") == BatchStatus.PENDING


# -- poll --------------------------------------------------------------------------------------------------------------
def test_a_running_part_is_polled_again_later_and_later(runtime: Runtime) -> None:
    job_id = new_job(runtime)
    submitted(runtime, job_id)
    steps = [pipeline.poll(runtime, job_id, 0) for _ in range(5)]
    assert [step.step if step else None for step in steps] == ["poll"] * 5
    countdowns = [step.countdown for step in steps if step]
    # The job's poll_interval is 1 s: the first check comes soon, then each waits half as long again as the last.
    assert countdowns == [1.0, 1.0, 1.5, 2.25, 3.375]
    assert part_field(runtime, job_id, 0, "polls") == 5
    assert part_field(runtime, job_id, 0, "state") == PartState.SUBMITTED


def test_the_poll_countdown_is_capped_and_stops_at_the_deadline(runtime: Runtime) -> None:
    job_id = new_job(runtime)
    set_job_fields(runtime, job_id, poll_interval=200)
    job = job_record(runtime, job_id)
    assert pipeline.poll_countdown(runtime, job, 0) == 1.0  # the first check comes soon, whatever the interval
    assert pipeline.poll_countdown(runtime, job, 2) == SETTINGS.max_poll_interval  # 300, not 200 * 1.5
    set_job_fields(runtime, job_id, deadline=time.time() + 100)
    assert 0 < pipeline.poll_countdown(runtime, job_record(runtime, job_id), 2) <= 100
    # Past it, the cancel the deadline sent is seen through at most a minute apart: polls back to back hammered a
    # provider whose cancel takes minutes.
    set_job_fields(runtime, job_id, deadline=time.time() - 1)
    assert pipeline.poll_countdown(runtime, job_record(runtime, job_id), 2) == polling.AFTER_DEADLINE == 60.0
    assert pipeline.poll_countdown(runtime, job_record(runtime, job_id), 0) == 1.0  # the first check still soon


def test_an_ended_part_goes_to_fetch(runtime: Runtime, calls: dict[str, int]) -> None:
    job_id = new_job(runtime)
    submitted(runtime, job_id)
    end_at_provider(runtime, job_id)
    assert pipeline.poll(runtime, job_id, 0) == Next("fetch", 0)
    assert part_field(runtime, job_id, 0, "state") == PartState.ENDED
    assert part_field(runtime, job_id, 0, "provider_state") == "completed"
    # A poll redelivered after that sends the fetch again without asking the provider.
    assert pipeline.poll(runtime, job_id, 0) == Next("fetch", 0)
    assert calls["status"] == 2  # the create's own status answer, and the poll that saw the end


def test_a_poll_of_a_part_not_created_sends_its_submit_and_of_one_stored_does_nothing(
    runtime: Runtime, calls: dict[str, int]
) -> None:
    job_id = new_job(runtime)
    assert pipeline.poll(runtime, job_id, 0) == Next("submit")  # its submit was lost: a submit creates it, once
    runtime.store.transition_part(job_id, 0, PartState.STORED, PartState.PENDING)  # (all answered from the cache)
    assert pipeline.poll(runtime, job_id, 0) is None
    assert pipeline.stale_polls(later(runtime)) == []  # and the sweep does not send it again and again
    assert calls == {}


def test_a_batch_the_provider_no_longer_knows_ends_the_part(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = new_job(runtime)
    submitted(runtime, job_id)

    def gone(batch_id: str) -> Snapshot:
        raise ProviderRejected("test: 404 no such batch", 404)

    monkeypatch.setattr(runtime.provider("test"), "status", gone)
    assert pipeline.poll(runtime, job_id, 0) == Next("fetch", 0)
    assert part_field(runtime, job_id, 0, "provider_status") == pipeline.NOT_FOUND
    assert part_field(runtime, job_id, 0, "provider_state") == "failed"


def test_unreadable_status_answers_end_the_part_after_the_poison_bound(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = new_job(runtime)
    submitted(runtime, job_id)
    provider = runtime.provider("test")
    readable = provider.status

    def unreadable(batch_id: str) -> Snapshot:
        raise MalformedAnswer("test: not JSON")

    monkeypatch.setattr(provider, "status", unreadable)
    for _ in range(POISON_ATTEMPTS - 1):
        with pytest.raises(MalformedAnswer):
            pipeline.poll(runtime, job_id, 0)  # the task tries again after its back-off
    # One readable answer in between starts the count again.
    monkeypatch.setattr(provider, "status", readable)
    assert pipeline.poll(runtime, job_id, 0) == Next("poll", 0, countdown=1.0)
    monkeypatch.setattr(provider, "status", unreadable)
    for _ in range(POISON_ATTEMPTS - 1):
        with pytest.raises(MalformedAnswer):
            pipeline.poll(runtime, job_id, 0)
    assert part_field(runtime, job_id, 0, "state") == PartState.SUBMITTED
    assert pipeline.poll(runtime, job_id, 0) == Next("fetch", 0)  # the last try of the bound
    assert part_field(runtime, job_id, 0, "provider_status") == pipeline.UNREADABLE
    assert part_field(runtime, job_id, 0, "error") == "test: not JSON"


def test_a_status_answer_that_breaks_the_parser_ends_the_part_after_the_poison_bound(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Anything unforeseen an adapter raises on a status answer was logged and polled again at the poll cap, for as
    long as the answer stayed so: the job never ended."""
    job_id = new_job(runtime)
    submitted(runtime, job_id)
    provider = runtime.provider("test")

    def choking(batch_id: str) -> Snapshot:
        raise ValueError("invalid literal for int(): 'a quoted answer'")

    monkeypatch.setattr(provider, "status", choking)
    for _ in range(POISON_ATTEMPTS - 1):
        with pytest.raises(MalformedAnswer, match="ValueError"):
            pipeline.poll(runtime, job_id, 0)
    assert pipeline.poll(runtime, job_id, 0) == Next("fetch", 0)
    assert part_field(runtime, job_id, 0, "provider_status") == pipeline.UNREADABLE
    assert "ValueError" in part_field(runtime, job_id, 0, "error")
    assert "quoted" not in part_field(runtime, job_id, 0, "error") and "quoted" not in caplog.text


def test_a_create_answer_that_breaks_the_parser_every_time_ends_the_part_after_the_poison_bound(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each try lists the provider's batches before it creates again (the batch may exist); one whose answer can never
    be read ends failed after the bound, instead of creating again on every retry for ever."""
    job_id = new_job(runtime)
    provider = runtime.provider("test")
    finds = []
    find = provider.find

    def choking(*args: object, **kwargs: object) -> Snapshot:
        raise ValueError("invalid literal for int(): 'a quoted answer'")

    def counted_find(job_id: str, part: int) -> Snapshot | None:
        finds.append(part)
        return find(job_id, part)

    monkeypatch.setattr(provider, "create", choking)
    monkeypatch.setattr(provider, "find", counted_find)
    for _ in range(POISON_ATTEMPTS):
        with pytest.raises(MalformedAnswer, match="ValueError"):
            submitted(runtime, job_id)
    assert submitted(runtime, job_id) == [Next("fetch", 0)]  # the listing after the last create found nothing
    assert finds == [0] * POISON_ATTEMPTS  # before every create after the first, and after the last
    assert part_field(runtime, job_id, 0, "provider_state") == "failed"
    error = part_field(runtime, job_id, 0, "error")
    assert "could not be read" in error and "ValueError" in error and "quoted" not in error
    assert pipeline.fetch(runtime, job_id, 0) == [Next("deliver")]
    assert results_stored(runtime, job_id) == 3 and job_field(runtime, job_id, "failed") == 3


def test_a_batch_made_by_the_last_create_whose_answer_was_unreadable_is_found_not_lost(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The poison bound is checked when a listing has found nothing, never right after a create: the last create may
    have made the batch."""
    job_id = new_job(runtime)
    provider = runtime.provider("test")
    create = provider.create
    tries: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> Snapshot:
        tries.append(1)
        if len(tries) == POISON_ATTEMPTS:
            create(*args, **kwargs)  # this one is made at the provider; its answer is lost all the same
        raise ValueError("unreadable")

    monkeypatch.setattr(provider, "create", flaky)
    for _ in range(POISON_ATTEMPTS):
        with pytest.raises(MalformedAnswer):
            submitted(runtime, job_id)
    assert submitted(runtime, job_id) == [Next("poll", 0)]
    assert part_field(runtime, job_id, 0, "state") == PartState.SUBMITTED and part_field(
        runtime, job_id, 0, "provider_id"
    )
    assert creates(runtime, job_id) == 1 and len(tries) == POISON_ATTEMPTS


def test_a_failure_on_batchlines_side_during_create_is_not_taken_for_an_unreadable_answer(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while spooling is not the provider's answer: it is raised as it is and counts toward no bound."""
    job_id = new_job(runtime)

    def disk_full(*args: Any, **kwargs: Any) -> Snapshot:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runtime.provider("test"), "create", disk_full)
    with pytest.raises(OSError):
        submitted(runtime, job_id)
    part = runtime.store.part(job_id, 0)
    assert part.state == PartState.PENDING and part.create_poisoned is None and not part.create_error


def test_a_hostile_status_answer_ends_the_part_at_once(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = new_job(runtime)
    submitted(runtime, job_id)

    def hostile(batch_id: str) -> Snapshot:
        raise HostileAnswer("test: results on a foreign host")

    monkeypatch.setattr(runtime.provider("test"), "status", hostile)
    assert pipeline.poll(runtime, job_id, 0) == Next("fetch", 0)
    assert part_field(runtime, job_id, 0, "provider_state") == "failed"


def test_a_batch_whose_cancel_takes_long_is_not_polled_back_to_back_after_the_deadline(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = new_job(runtime)
    submitted(runtime, job_id)
    set_job_fields(runtime, job_id, deadline=time.time() - 1)
    cancelling = Snapshot("", "cancelling", "cancelling", total=3)
    monkeypatch.setattr(TestProvider, "status", lambda self, batch_id: replace(cancelling, id=batch_id))
    monkeypatch.setattr(TestProvider, "cancel", lambda self, batch_id: replace(cancelling, id=batch_id))
    steps = [pipeline.poll(runtime, job_id, 0) for _ in range(4)]
    assert [step.countdown for step in steps if step] == [1.0, 1.0, 1.5, 2.25]  # as before the deadline
    assert job_field(runtime, job_id, "state") == BatchStatus.CANCELLING


def test_a_batch_still_running_past_the_age_limit_is_asked_to_cancel_then_given_up_and_its_job_ends(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider that says `in_progress` for ever (past its own 24-hour window) had the batch polled until the job's
    keys expired: the job never ended, and its requests never got a result."""
    job_id = new_job(runtime)
    submitted(runtime, job_id)
    assert time.time() - part_field(runtime, job_id, 0, "submitted_at") < 60
    assert pipeline.poll(runtime, job_id, 0) == Next("poll", 0, countdown=1.0)  # young: waited for
    runtime.store.set_part(job_id, 0, submitted_at=time.time() - 73 * 3600)
    asked: list[str] = []
    running = Snapshot("", "in_progress", "running", total=3)

    def cancel_fails_then_is_ignored(self: TestProvider, batch_id: str) -> Snapshot:
        asked.append(batch_id)
        if len(asked) == 1:
            raise TransientProviderError("test: 503")
        return replace(running, id=batch_id)

    monkeypatch.setattr(TestProvider, "status", lambda self, batch_id: replace(running, id=batch_id))
    monkeypatch.setattr(TestProvider, "cancel", cancel_fails_then_is_ignored)
    # Asked to cancel, a minute apart, for an hour: a cancel that ends it has what it ran fetched.
    assert pipeline.poll(runtime, job_id, 0) == Next("poll", 0, countdown=60.0)
    assert pipeline.poll(runtime, job_id, 0) == Next("poll", 0, countdown=60.0)
    assert len(asked) == 2  # the failed ask is asked again
    runtime.store.set_part(job_id, 0, overdue_since=time.time() - 3601)
    assert pipeline.poll(runtime, job_id, 0) == Next("fetch", 0)
    assert pipeline.fetch(runtime, job_id, 0) == [Next("deliver")]
    assert (job_field(runtime, job_id, "state"), job_field(runtime, job_id, "failed")) == (BatchStatus.FAILED, 3)
    stored = runtime.store.results(job_id, ["r0"])[0]
    assert stored is not None and b"73 hours after it was created, past what batchline waits for" in stored.body
    assert b"may still run, and be billed" in stored.body


def test_a_batch_past_the_age_limit_that_its_cancel_ends_is_fetched(runtime: Runtime) -> None:
    job_id = new_job(runtime)
    submitted(runtime, job_id)  # a `test` batch runs until the test ends it
    runtime.store.set_part(job_id, 0, submitted_at=time.time() - SETTINGS.batch_age_limit - 1)
    assert pipeline.poll(runtime, job_id, 0) == Next("fetch", 0)
    assert part_field(runtime, job_id, 0, "provider_state") == "cancelled"  # what it ran is read, as for any cancel


def test_a_batch_is_overdue_before_its_jobs_keys_expire_and_an_older_record_is_timed_from_now(
    runtime: Runtime,
) -> None:
    job_id = new_job(runtime)
    submitted(runtime, job_id)
    runtime.store.redis.hdel(runtime.store.part_key(job_id, 0), "submitted_at")  # written by an older batchline
    set_job_fields(runtime, job_id, created_at=time.time() - 10 * 86400)
    assert pipeline.poll(runtime, job_id, 0) == Next("poll", 0, countdown=1.0)  # not cut short on an old job's age
    assert time.time() - part_field(runtime, job_id, 0, "submitted_at") < 60
    keys_last = SETTINGS.ttl_seconds - OVERDUE_GRACE - SETTINGS.max_poll_interval - KEYS_MARGIN
    set_job_fields(runtime, job_id, created_at=time.time() - keys_last - 1)  # its keys expire in under 2 h 5 min
    assert pipeline.poll(runtime, job_id, 0) == Next("fetch", 0)
    assert part_field(runtime, job_id, 0, "provider_state") == "cancelled"


def test_a_poll_after_the_jobs_deadline_cancels_its_batch(runtime: Runtime) -> None:
    job_id = new_job(runtime)
    submitted(runtime, job_id)
    set_job_fields(runtime, job_id, deadline=time.time() - 1)
    assert pipeline.poll(runtime, job_id, 0) == Next("fetch", 0)
    assert job_field(runtime, job_id, "state") == BatchStatus.CANCELLING
    assert part_field(runtime, job_id, 0, "provider_state") == "cancelled"


# -- fetch -------------------------------------------------------------------------------------------------------------
def test_fetch_stores_each_result_once_and_ends_the_job(runtime: Runtime) -> None:
    job_id = ended_job(runtime)
    assert pipeline.fetch(runtime, job_id, 0) == [Next("deliver")]
    assert results_stored(runtime, job_id) == 3
    assert part_field(runtime, job_id, 0, "state") == PartState.STORED
    assert (job_field(runtime, job_id, "succeeded"), job_field(runtime, job_id, "failed")) == (3, 0)
    assert job_field(runtime, job_id, "state") == BatchStatus.COMPLETED
    stream = announced(runtime.store.redis, runtime.store.job_key(job_id))
    # Redelivered: nothing stored, counted or announced twice. Its delivery step is sent again (the first fetch may
    # have died before sending it) until a delivery step has run to its end.
    assert pipeline.fetch(runtime, job_id, 0) == [Next("deliver")]
    assert results_stored(runtime, job_id) == 3
    assert (job_field(runtime, job_id, "succeeded"), job_field(runtime, job_id, "failed")) == (3, 0)
    assert announced(runtime.store.redis, runtime.store.job_key(job_id)) == stream == ["r0", "r1", "r2"]
    runtime.store.mark_delivered(job_id, pipeline.DELIVERED)
    assert pipeline.fetch(runtime, job_id, 0) == []


def test_fetch_reports_its_progress(runtime: Runtime) -> None:
    job_id = ended_job(runtime)
    heard: list[tuple[int, int]] = []
    pipeline.fetch(runtime, job_id, 0, progress=lambda stored, total: heard.append((stored, total)))
    assert heard and heard[-1] == (3, 3)


def test_a_job_ends_only_when_its_last_part_is_stored(runtime: Runtime, parts_of_two: None) -> None:
    job_id = new_job(runtime, count=4)
    submitted(runtime, job_id)
    end_at_provider(runtime, job_id, 0)
    assert pipeline.poll(runtime, job_id, 0) == Next("fetch", 0)
    assert pipeline.fetch(runtime, job_id, 0) == []
    assert job_field(runtime, job_id, "state") == BatchStatus.IN_PROGRESS
    end_at_provider(runtime, job_id, 1)
    assert pipeline.poll(runtime, job_id, 1) == Next("fetch", 1)
    assert pipeline.fetch(runtime, job_id, 1) == [Next("deliver")]
    assert job_field(runtime, job_id, "state") == BatchStatus.COMPLETED
    assert results_stored(runtime, job_id) == 4


def test_a_fetch_of_a_part_still_running_stores_nothing(runtime: Runtime, calls: dict[str, int]) -> None:
    job_id = new_job(runtime)
    submitted(runtime, job_id)
    assert pipeline.fetch(runtime, job_id, 0) == []
    assert results_stored(runtime, job_id) == 0
    assert "read_results" not in calls
    assert part_field(runtime, job_id, 0, "state") == PartState.SUBMITTED


def test_fetch_leaves_out_lines_that_are_not_the_parts_and_counts_them(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = ended_job(runtime)
    ok = orjson.dumps({"ok": True})

    def odd_results(batch: Snapshot) -> Iterator[ReadResult]:
        yield "r0", "succeeded", ok, None
        yield "r0", "succeeded", b'{"again": true}', None  # repeated
        yield "stranger", "succeeded", ok, None  # not the part's
        yield "", "succeeded", ok, None  # no usable custom_id
        yield "r1", "no-such-status", ok, None  # unknown status

    monkeypatch.setattr(runtime.provider("test"), "read_results", odd_results)
    assert pipeline.fetch(runtime, job_id, 0) == [Next("deliver")]
    assert job_field(runtime, job_id, "anomalies") == 4
    assert part_field(runtime, job_id, 0, "anomalies") == 4
    stored = runtime.store.results(job_id, ["r0", "r1", "r2", "stranger"])
    assert stored[0] is not None and stored[0].body == ok
    assert stored[1] is not None and stored[2] is not None  # the requests the batch did not answer get a result
    assert stored[3] is None
    assert results_stored(runtime, job_id) == 3
    assert pipeline.summary(runtime, job_id)["anomalies"] == 4


def break_after_the_first_result(runtime: Runtime, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    """The `test` provider's download gives its first result, then raises `error`, on every try."""
    provider = runtime.provider("test")
    whole = provider.read_results

    def broken(batch: Snapshot) -> Iterator[ReadResult]:
        yield next(whole(batch))
        raise error

    monkeypatch.setattr(provider, "read_results", broken)


def test_a_download_that_breaks_off_is_stored_as_far_as_it_went_and_ends_the_part_after_the_poison_bound(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = ended_job(runtime)
    break_after_the_first_result(runtime, monkeypatch, BrokenDownload("test: the connection closed"))
    for _ in range(POISON_ATTEMPTS - 1):
        with pytest.raises(BrokenDownload):
            pipeline.fetch(runtime, job_id, 0)
        assert results_stored(runtime, job_id) == 1  # what was read is kept, once
        assert part_field(runtime, job_id, 0, "state") == PartState.ENDED
    assert pipeline.fetch(runtime, job_id, 0) == [Next("deliver")]
    assert part_field(runtime, job_id, 0, "provider_state") == "failed"
    assert "could not be read: test: the connection closed" in part_field(runtime, job_id, 0, "error")
    assert results_stored(runtime, job_id) == 3  # the two never read carry the cause
    assert (job_field(runtime, job_id, "succeeded"), job_field(runtime, job_id, "failed")) == (1, 2)


def test_a_parser_that_breaks_on_the_answers_ends_the_part_after_the_poison_bound_and_never_quotes_them(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An adapter raising something no one foresaw (a hostile value an `int()` chokes on) failed the fetch task on
    every try, and the job never ended."""
    job_id = ended_job(runtime)
    break_after_the_first_result(runtime, monkeypatch, ValueError("invalid literal for int(): 'the secret answer'"))
    for _ in range(POISON_ATTEMPTS - 1):
        with pytest.raises(MalformedAnswer, match="ValueError"):
            pipeline.fetch(runtime, job_id, 0)
        assert results_stored(runtime, job_id) == 1
    assert pipeline.fetch(runtime, job_id, 0) == [Next("deliver")]
    assert part_field(runtime, job_id, 0, "provider_state") == "failed"
    error = part_field(runtime, job_id, 0, "error")
    assert "ValueError" in error and "secret" not in error
    assert "ValueError" in caplog.text and "secret" not in caplog.text
    assert results_stored(runtime, job_id) == 3  # the two never read carry the cause
    assert (job_field(runtime, job_id, "succeeded"), job_field(runtime, job_id, "failed")) == (1, 2)


STORE_FAULTS = [redis.ConnectionError, redis.exceptions.ReadOnlyError, redis.exceptions.ClusterDownError]


@pytest.mark.parametrize("fault", STORE_FAULTS)
def test_redis_failing_during_a_download_or_a_poll_is_no_poison(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, fault: type[Exception]
) -> None:
    """An adapter reads its own keys in Redis too: Redis away, or a failover's errors, are not the provider's answer."""
    job_id = ended_job(runtime)
    provider = runtime.provider("test")

    def outage(*args: object) -> Iterator[ReadResult]:
        raise fault("Redis went away")
        yield  # a generator, as adapters are

    monkeypatch.setattr(provider, "read_results", outage)
    for _ in range(POISON_ATTEMPTS + 1):
        with pytest.raises(fault):  # an outage: the task gives its message back (see tasks._requeue_on_outage)
            pipeline.fetch(runtime, job_id, 0)
    assert part_field(runtime, job_id, 0, "state") == PartState.ENDED

    polled = new_job(runtime)
    submitted(runtime, polled)
    monkeypatch.setattr(provider, "status", lambda batch_id: next(outage()))
    for _ in range(POISON_ATTEMPTS + 1):
        with pytest.raises(fault):
            pipeline.poll(runtime, polled, 0)
    assert part_field(runtime, polled, 0, "state") == PartState.SUBMITTED


def test_a_download_that_breaks_off_after_its_last_result_is_not_poison(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = ended_job(runtime)
    provider = runtime.provider("test")
    whole = provider.read_results

    def lying_length(batch: Snapshot) -> Iterator[ReadResult]:
        yield from whole(batch)
        raise BrokenDownload("test: Content-Length promised more")

    monkeypatch.setattr(provider, "read_results", lying_length)
    assert pipeline.fetch(runtime, job_id, 0) == [Next("deliver")]
    assert job_field(runtime, job_id, "succeeded") == 3
    assert part_field(runtime, job_id, 0, "provider_state") == "completed"


def test_transient_failures_go_again_in_a_new_part_while_resubmissions_are_left(runtime: Runtime) -> None:
    job_id = new_job(runtime, prompt=FLAKY_MARKER)  # each request is rate limited the first time it runs
    set_job_fields(runtime, job_id, max_resubmissions=1)
    submitted(runtime, job_id)
    end_at_provider(runtime, job_id, 0)
    pipeline.poll(runtime, job_id, 0)
    assert pipeline.fetch(runtime, job_id, 0) == [Next("submit")]
    assert job_field(runtime, job_id, "parts") == 2
    assert part_field(runtime, job_id, 1, "generation") == 1
    assert results_stored(runtime, job_id) == 0
    # Redelivered: no third part, and part 1's submit again (the first fetch may have died before sending it).
    assert pipeline.fetch(runtime, job_id, 0) == [Next("submit")]
    assert job_field(runtime, job_id, "parts") == 2
    assert submitted(runtime, job_id) == [Next("poll", 1)]
    end_at_provider(runtime, job_id, 1)
    assert pipeline.poll(runtime, job_id, 1) == Next("fetch", 1)
    assert pipeline.fetch(runtime, job_id, 1) == [Next("deliver")]
    assert (job_field(runtime, job_id, "succeeded"), job_field(runtime, job_id, "failed")) == (3, 0)


# -- the screen of anomalies -------------------------------------------------------------------------------------------
def test_the_screen_lets_through_the_parts_results_once_each() -> None:
    screen = Screen({"a", "b"})
    lines = [
        ("a", "succeeded", b"1"),
        ("a", "succeeded", b"2"),
        ("c", "succeeded", b"3"),
        (None, "succeeded", b"4"),
        ("b", "nonsense", b"5"),
        ("b", "errored", b"6"),
    ]
    assert list(screen(lines)) == [("a", "succeeded", b"1"), ("b", "errored", b"6")]  # type: ignore[arg-type]
    assert screen.anomalies == 4
    assert screen.seen_kinds == {"repeated id": 1, "id outside the part": 1, "unreadable line": 1, "unknown status": 1}
    assert screen.error is None


def test_the_screen_keeps_an_error_that_ends_the_stream() -> None:
    def breaking() -> Iterator[tuple[str, str, bytes]]:
        yield "a", "succeeded", b"1"
        raise BrokenDownload("cut")

    screen = Screen({"a", "b"})
    assert list(screen(breaking())) == [("a", "succeeded", b"1")]
    assert isinstance(screen.error, BrokenDownload)


# -- finish ------------------------------------------------------------------------------------------------------------
def test_finish_ends_the_job_once_every_part_is_stored_and_only_once(runtime: Runtime, parts_of_two: None) -> None:
    job_id = new_job(runtime, count=4)
    submitted(runtime, job_id)
    for n in range(2):
        end_at_provider(runtime, job_id, n)
        pipeline.poll(runtime, job_id, n)
    assert not pipeline.finish(runtime, job_id)  # no part is stored yet
    runtime.store.add_results(job_id, [(f"r{i}", "succeeded", b"{}") for i in range(4)])
    for n in range(2):
        assert runtime.store.transition_part(job_id, n, PartState.STORED, PartState.ENDED)
    assert pipeline.finish(runtime, job_id)
    assert job_field(runtime, job_id, "state") == BatchStatus.COMPLETED
    assert job_field(runtime, job_id, "completed_at") > 0
    assert [body for _, body in runtime.store.part_requests(job_id, 0)] == [None, None]  # the prompts are dropped
    assert not pipeline.finish(runtime, job_id)  # the one caller that ended it sends the delivery


def test_finish_does_not_end_a_job_whose_resubmission_lands_while_it_reads(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`finish` reads the job, then its parts. Another worker's fetch may add a resubmission part and store its own
    part in between: the parts read are all stored, and the new one was not among them. Ended then, the job dropped
    the prompts that part still had to send, and its requests never got a result."""
    job_id = ended_job(runtime)
    store = runtime.store
    read_parts = Store.parts

    def parts_after_a_resubmission(self: Store, job_id: str, count: int) -> list[PartRecord]:
        monkeypatch.setattr(Store, "parts", read_parts)
        assert store.add_part(job_id, 0, ["r2"], 1) == 1  # r2 expired: it goes again in part 1 ...
        assert store.transition_part(job_id, 0, PartState.STORED, PartState.ENDED)  # ... then part 0 is stored
        return read_parts(self, job_id, count)

    monkeypatch.setattr(Store, "parts", parts_after_a_resubmission)
    assert not pipeline.finish(runtime, job_id)
    assert job_field(runtime, job_id, "state") != BatchStatus.COMPLETED
    assert part_field(runtime, job_id, 1, "state") == PartState.PENDING
    assert [cid for cid, body in store.part_requests(job_id, 1) if body] == ["r2"]  # its prompt is still there


@pytest.mark.parametrize(
    ("job_state", "provider_states", "outcome"),
    [
        (BatchStatus.IN_PROGRESS, ("completed", "completed"), BatchStatus.COMPLETED),
        (BatchStatus.IN_PROGRESS, ("completed", "failed"), BatchStatus.COMPLETED),
        (BatchStatus.IN_PROGRESS, ("failed", "failed"), BatchStatus.FAILED),
        (BatchStatus.IN_PROGRESS, ("expired",), BatchStatus.EXPIRED),
        (BatchStatus.IN_PROGRESS, ("completed", "cancelled"), BatchStatus.CANCELLED),
        (BatchStatus.CANCELLING, ("completed",), BatchStatus.CANCELLED),
    ],
)
def test_final_status(job_state: str, provider_states: tuple[str, ...], outcome: BatchStatus) -> None:
    job, parts = records_of(job_state, *provider_states)
    assert pipeline.final_status(job, parts) is outcome


# -- cancel ------------------------------------------------------------------------------------------------------------
def test_request_cancel_marks_only_a_running_job(runtime: Runtime) -> None:
    job_id = new_job(runtime)
    assert pipeline.request_cancel(runtime, job_id)
    assert job_field(runtime, job_id, "state") == BatchStatus.CANCELLING
    assert not pipeline.request_cancel(runtime, job_id)  # already cancelling
    ended = ended_job(runtime)
    pipeline.fetch(runtime, ended, 0)
    assert not pipeline.request_cancel(runtime, ended)
    assert job_field(runtime, ended, "state") == BatchStatus.COMPLETED


def test_cancel_stops_running_batches_and_parts_not_created(
    runtime: Runtime, parts_of_two: None, calls: dict[str, int]
) -> None:
    job_id = new_job(runtime, count=4)
    assert pipeline.cancel(runtime, job_id) == []  # not cancelling: nothing to do
    # Part 0 is created, part 1 not yet (its submit is still to come).
    assert runtime.store.claim_part(job_id, 1, f"later:{time.time()}")
    steps = submitted(runtime, job_id)
    assert steps[0] == Next("poll", 0) and creates(runtime, job_id, 1) == 0
    runtime.store.redis.hdel(runtime.store.part_key(job_id, 1), "claim")  # its submit never came
    assert pipeline.request_cancel(runtime, job_id)
    assert pipeline.cancel(runtime, job_id) == [Next("fetch", 0), Next("fetch", 1)]
    assert calls["cancel"] == 1
    assert [part_field(runtime, job_id, n, "provider_state") for n in range(2)] == ["cancelled", "cancelled"]
    assert creates(runtime, job_id, 1) == 0
    assert pipeline.fetch(runtime, job_id, 0) == []
    assert pipeline.fetch(runtime, job_id, 1) == [Next("deliver")]
    assert job_field(runtime, job_id, "state") == BatchStatus.CANCELLED
    assert results_stored(runtime, job_id) == 4  # every request has its (cancelled) result
    assert job_field(runtime, job_id, "succeeded") == 0


def test_a_poll_of_a_cancelling_job_cancels_its_batch(runtime: Runtime) -> None:
    job_id = new_job(runtime)
    submitted(runtime, job_id)
    assert pipeline.request_cancel(runtime, job_id)
    assert pipeline.poll(runtime, job_id, 0) == Next("fetch", 0)
    assert part_field(runtime, job_id, 0, "provider_state") == "cancelled"


# -- the sweep's lists -------------------------------------------------------------------------------------------------
def later(runtime: Runtime) -> Runtime:
    """The same store seen by a sweep whose thresholds have all passed."""
    settings = replace(runtime.settings, max_poll_interval=0, sweep_interval=0, claim_timeout=0)
    return Runtime(settings, runtime.store)


def test_a_part_being_polled_is_on_the_stale_list_only_once_its_poll_is_overdue(runtime: Runtime) -> None:
    job_id = new_job(runtime)
    assert pipeline.stale_polls(later(runtime)) == []  # not created: nothing polls it yet
    submitted(runtime, job_id)
    assert pipeline.stale_polls(runtime) == []
    assert pipeline.stale_polls(later(runtime)) == [(job_id, 0)]
    end_at_provider(runtime, job_id)
    pipeline.poll(runtime, job_id, 0)
    pipeline.fetch(runtime, job_id, 0)
    assert pipeline.stale_polls(later(runtime)) == []  # stored: no poll to lose


def test_a_pending_job_is_on_the_stale_submit_list_until_its_submit_runs(runtime: Runtime) -> None:
    job_id = new_job(runtime)
    assert pipeline.stale_submits(runtime) == []  # just created: its submit is on its way
    assert pipeline.stale_submits(later(runtime)) == [job_id]
    submitted(runtime, job_id)
    assert pipeline.stale_submits(later(runtime)) == []


def test_a_resubmitted_part_whose_submit_was_lost_is_found_by_the_sweep_and_created_once(runtime: Runtime) -> None:
    """The fetch that made part 1 died before sending its submit, or Redis lost the message. The job was in
    progress, so no stale-submit list had it, and part 1 had no poll record: nothing created it, and the job never
    ended."""
    job_id = new_job(runtime, prompt=FLAKY_MARKER)  # each request is rate limited the first time it runs
    set_job_fields(runtime, job_id, max_resubmissions=1)
    submitted(runtime, job_id)
    end_at_provider(runtime, job_id, 0)
    pipeline.poll(runtime, job_id, 0)
    assert pipeline.fetch(runtime, job_id, 0) == [Next("submit")]  # ... which is lost
    assert pipeline.stale_polls(later(runtime)) == [(job_id, 1)]
    assert pipeline.poll(runtime, job_id, 1) == Next("submit")  # the sweep's poll
    assert pipeline.stale_polls(runtime) == []  # asked again only once a whole threshold has passed
    assert submitted(runtime, job_id) == [Next("poll", 1)]
    end_at_provider(runtime, job_id, 1)
    assert pipeline.poll(runtime, job_id, 1) == Next("fetch", 1)
    assert pipeline.fetch(runtime, job_id, 1) == [Next("deliver")]
    assert (creates(runtime, job_id, 1), job_field(runtime, job_id, "succeeded")) == (1, 3)


def test_a_poll_of_a_part_never_created_in_an_ended_job_ends_its_record(runtime: Runtime, parts_of_two: None) -> None:
    job_id = new_job(runtime, count=4)
    runtime.store.record_poll(job_id, 1, counted=False)
    assert runtime.store.transition_job(job_id, BatchStatus.FAILED, BatchStatus.PENDING)
    assert pipeline.poll(runtime, job_id, 1) is None
    assert pipeline.stale_polls(later(runtime)) == []  # the sweep stops asking
    assert creates(runtime, job_id, 1) == 0


# -- what the tasks hand on --------------------------------------------------------------------------------------------
def test_the_summary_holds_counts_and_no_prompt(runtime: Runtime) -> None:
    job_id = ended_job(runtime)
    pipeline.fetch(runtime, job_id, 0)
    summary = pipeline.summary(runtime, job_id)
    assert summary == {
        "job_id": job_id,
        "status": BatchStatus.COMPLETED,
        "total": 3,
        "succeeded": 3,
        "failed": 0,
        "anomalies": 0,
        "cached": 0,  # no request was answered without being sent
        "input_tokens": 0,
        "output_tokens": 0,
        "cost": None,  # the test model has no price
    }
    assert "question" not in str(summary)


@pytest.mark.parametrize(
    ("size", "chunks"), [(2, [["r0", "r1"], ["r2", "r3"], ["r4"]]), (5, [[f"r{i}" for i in range(5)]])]
)
def test_delivery_chunks_go_in_request_order(runtime: Runtime, size: int, chunks: list[list[str]]) -> None:
    job_id = new_job(runtime, count=5)
    got = list(pipeline.delivery_chunks(runtime, job_id, size))
    assert got == [(f"chunk:{number}", ids) for number, ids in enumerate(chunks)]


def test_a_step_on_a_job_that_is_gone_names_it(runtime: Runtime) -> None:
    from batchline.errors import JobNotFound

    for step in (pipeline.finish, pipeline.cancel, pipeline.summary, submitted):
        with pytest.raises(JobNotFound, match="batch_gone"):
            step(runtime, "batch_gone")
    with pytest.raises(JobNotFound, match="batch_gone"):
        pipeline.poll(runtime, "batch_gone", 0)


def test_a_part_whose_record_is_gone_is_never_created_as_an_empty_batch(runtime: Runtime) -> None:
    job_id = new_job(runtime)
    runtime.store.redis.delete(runtime.store.part_key(job_id, 0))  # evicted, or deleted by hand
    assert submitted(runtime, job_id) == []
    assert creates(runtime, job_id) == 0

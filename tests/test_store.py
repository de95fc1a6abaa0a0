"""The store and its state machine, on fakeredis (the same Lua scripts run on a real Redis in the worker tests)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import fakeredis
import pytest

from batchline.records import JobRecord, PartRecord, PartState
from batchline.redis_urls import store_client
from batchline.store import Store
from batchline.store_cluster import ClusterStore
from batchline.types import BatchStatus

from .conftest import announced


@pytest.fixture(params=["fakeredis", pytest.param("cluster", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """The store on fakeredis, and on a 3-master Redis Cluster (hash-tagged keys, the steps split per slot)."""
    if request.param == "fakeredis":
        yield Store(fakeredis.FakeRedis(), prefix="t:", ttl_seconds=3600)
        return
    prefix = f"t-{uuid.uuid4().hex[:8]}:"
    store = ClusterStore(store_client(request.getfixturevalue("redis_cluster_url")), prefix, ttl_seconds=3600)
    yield store
    for key in list(store.redis.scan_iter(match=f"{prefix}*")):
        store.redis.delete(key)


def make_job(store: Store, job_id: str = "j", count: int = 5, parts: int = 1) -> list[str]:
    ids = [f"r{i}" for i in range(count)]
    rows = [(cid, f'{{"q":"{cid}"}}'.encode(), None) for cid in ids]
    size = -(-count // parts)
    planned = [("g", ids[i : i + size]) for i in range(0, count, size)]
    store.create_job(job_id, JobRecord(model="test", total=count, created_at=1.0), rows, planned)
    return ids


def test_a_job_is_written_whole_in_request_order(store: Store) -> None:
    ids = make_job(store, count=2500, parts=3)
    job = store.load_job("j")
    assert job.state == BatchStatus.PENDING
    assert (job.total, job.parts, job.succeeded, job.failed) == (2500, 3, 0, 0)
    assert list(store.request_ids("j")) == ids
    assert [cid for cid, _ in store.part_requests("j", 1)] == ids[834:1668]
    assert dict(store.part_requests("j", 0))["r7"] == b'{"q":"r7"}'
    assert store.job_ids() == ["j"]


def test_every_key_of_a_job_has_a_ttl(store: Store) -> None:
    make_job(store, parts=2)
    store.add_results("j", [("r0", "succeeded", b"{}")])
    store.mark_delivered("j", "chunk:0")
    keys = [k.decode() for k in store.redis.scan_iter(match=f"{store.job_key('j')}*")]
    assert len(keys) >= 8
    for key in keys:
        assert 0 < store.redis.ttl(key) <= 3600, key


def test_a_result_is_stored_and_counted_once(store: Store) -> None:
    make_job(store)
    first = [("r0", "succeeded", b'{"a":1}'), ("r1", "errored", b'{"e":1}')]
    assert store.add_results("j", first) == 2
    # A fetch that runs again after a crash brings the same lines, and a different body for r0: nothing changes.
    assert store.add_results("j", [("r0", "succeeded", b'{"a":2}'), *first, ("r2", "expired", b"")]) == 1
    job = store.load_job("j")
    assert (job.succeeded, job.failed) == (1, 2)
    results = store.results("j", ["r0", "r1", "r2", "r3"])
    assert [(r.status, r.body) if r else None for r in results] == [
        ("succeeded", b'{"a":1}'),
        ("errored", b'{"e":1}'),
        ("expired", b""),
        None,
    ]
    assert announced(store.redis, store.job_key("j")) == ["r0", "r1", "r2"]  # once each
    assert list(store.missing_results("j", 0)) == ["r3", "r4"]


def test_a_chunk_too_big_for_one_stream_entry_is_refused_before_anything_is_stored(store: Store) -> None:
    make_job(store)
    with pytest.raises(ValueError, match="3,000"):
        store.add_results("j", [("r0", "succeeded", b"{}")], chunk=3001)
    assert store.results("j", ["r0"]) == [None]


def test_results_arrive_on_the_stream_in_order(store: Store) -> None:
    make_job(store)
    store.add_results("j", [(f"r{i}", "succeeded", b"{}") for i in range(5)], chunk=2)
    entries = store.redis.xrange(store.job_key("j", ":stream"))
    assert [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries] == [
        {"r0": "s", "r1": "s"},
        {"r2": "s", "r3": "s"},
        {"r4": "s"},
    ]
    assert announced(store.redis, store.job_key("j")) == ["r0", "r1", "r2", "r3", "r4"]


def test_transitions_only_from_allowed_states(store: Store) -> None:
    make_job(store)
    assert not store.transition_job("j", BatchStatus.COMPLETED, BatchStatus.IN_PROGRESS)
    assert store.transition_job("j", BatchStatus.IN_PROGRESS, BatchStatus.PENDING)
    assert not store.transition_job("j", BatchStatus.IN_PROGRESS, BatchStatus.PENDING)
    assert store.transition_job("j", BatchStatus.CANCELLING, BatchStatus.PENDING, BatchStatus.IN_PROGRESS)
    assert store.load_job("j").state == BatchStatus.CANCELLING


def test_one_winner_when_many_race_to_transition(store: Store) -> None:
    make_job(store)
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def race() -> None:
        barrier.wait()
        wins.append(store.transition_part("j", 0, PartState.SUBMITTED, PartState.PENDING))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1


def test_a_part_is_claimed_once(store: Store) -> None:
    make_job(store)
    assert store.claim_part("j", 0, "a")
    assert not store.claim_part("j", 0, "b")
    assert store.part("j", 0).claim == "a"


def test_only_a_part_still_to_be_created_is_claimed(store: Store) -> None:
    """A part a cancel ended is never claimed again, not even by taking its stale claim over, nor a part with no
    record (a claim alone would leave a part hash behind)."""
    make_job(store)
    assert store.claim_part("j", 0, "cancelled:1")
    assert store.transition_part("j", 0, PartState.ENDED, PartState.PENDING, provider_state="cancelled")
    assert not store.claim_part("j", 0, "b", over="cancelled:1")
    assert store.part("j", 0).claim == "cancelled:1"
    assert not store.claim_part("j", 7, "b")
    assert not store.redis.exists(store.part_key("j", 7))


def test_stale_polls_are_found(store: Store) -> None:
    make_job(store, parts=2)
    store.record_poll("j", 0)
    store.record_poll("j", 1, counted=False)
    assert store.part("j", 0).polls == 1
    assert not store.redis.hexists(store.part_key("j", 1), "polls")
    assert sorted(store.stale_polls(older_than=9e12)) == [("j", 0), ("j", 1)]
    assert store.stale_polls(older_than=0) == []
    store.forget_poll("j", 0)
    assert store.stale_polls(older_than=9e12) == [("j", 1)]


def test_a_poll_is_counted_and_its_answer_kept_only_while_the_part_waits(store: Store) -> None:
    make_job(store, parts=2)
    store.set_part("j", 0, state=PartState.SUBMITTED)
    assert store.polled("j", 0, PartState.SUBMITTED, provider_status="in_progress", completed=3)
    job, part = store.job_and_part("j", 0)
    assert job is not None
    assert (job.total, part.polls, part.provider_status, part.completed) == (5, 1, "in_progress", 3)
    # A poll that lost the race to the part's ending is counted, but leaves the ending's answer alone.
    store.set_part("j", 0, state=PartState.ENDED, provider_status="completed")
    assert not store.polled("j", 0, PartState.SUBMITTED, provider_status="in_progress")
    part = store.part("j", 0)
    assert (part.polls, part.provider_status) == (2, "completed")
    assert store.stale_polls(older_than=9e12) == [("j", 0)]
    assert store.job_and_part("nope", 0) == (None, PartRecord())


def test_delivery_markers_take_effect_once(store: Store) -> None:
    make_job(store)
    assert store.mark_delivered("j", "chunk:0")
    assert not store.mark_delivered("j", "chunk:0")
    assert store.is_delivered("j", "chunk:0") and not store.is_delivered("j", "chunk:1")


def test_a_parts_resubmission_is_made_once_and_lives_with_the_job(store: Store) -> None:
    make_job(store, count=6, parts=2)
    first = store.add_part("j", 1, ["r4", "r5"], generation=1)
    assert first == 2 and store.add_part("j", 1, ["r4", "r5"], generation=1) == 2  # asked again: the same part
    assert store.load_job("j").parts == 3
    assert list(store.part_ids("j", 2)) == ["r4", "r5"]
    part = store.part("j", 2)
    assert (part.state, part.total, part.group) == (PartState.PENDING, 2, "g")
    assert 0 < store.redis.ttl(store.part_key("j", 2, ":ids")) <= 3600
    store.touch("j", 3)
    store.drop_requests("j")
    assert list(store.part_requests("j", 0)) == [(f"r{i}", None) for i in range(3)]

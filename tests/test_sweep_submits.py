"""A job whose submit message was lost (a Redis that lost its last second of writes kept the job, not the message)
still ends: the beat sweep re-sends `batchline.submit` for every job left `pending` with no submit seen for
`claim_timeout + sweep_interval`, and a re-sent submit creates no provider batch twice.

Unit tests run the store and pipeline on fakeredis with the `test` provider (its batches live in the same Redis and
count their creates); the last test runs a real worker with beat on the real Redis.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import fakeredis
import pytest
from pydantic_ai import ModelRequest
from pydantic_ai.models.batch import BatchRequest

from batchline import BatchStatus, batch_status_sync, pipeline, worker
from batchline.config import Settings
from batchline.errors import TransientProviderError
from batchline.pipeline import Next
from batchline.redis_urls import store_client
from batchline.runtime import Runtime, runtime_for
from batchline.store import Store
from batchline.store_cluster import ClusterStore

from .conftest import WorkerProcess, make_real_setup, store_job
from .waiting import wait_for

TTL = 3600
SETTINGS = Settings(claim_timeout=600, sweep_interval=300, ttl_seconds=TTL)
THRESHOLD = 900  # claim_timeout + sweep_interval


@pytest.fixture(params=["fakeredis", pytest.param("cluster", marks=pytest.mark.redis)])
def runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    """On fakeredis, and on a 3-master Redis Cluster: the pending set on one shard, the jobs spread over all."""
    if request.param == "fakeredis":
        yield Runtime(SETTINGS, Store(fakeredis.FakeRedis(), "sw:", ttl_seconds=TTL))
        return
    prefix = f"sw-{uuid.uuid4().hex[:8]}:"
    store = ClusterStore(store_client(request.getfixturevalue("redis_cluster_url")), prefix, ttl_seconds=TTL)
    yield Runtime(SETTINGS, store)
    for key in list(store.redis.scan_iter(match=f"{prefix}*")):
        store.redis.delete(key)


def new_job(runtime: Runtime, age: float = 0.0, count: int = 3) -> str:
    """A `test` job written as `batch_create` writes it, `age` seconds ago, with no submit sent."""
    asks = [BatchRequest(custom_id=f"r{i}", messages=[ModelRequest.user_text_prompt(f"q {i}")]) for i in range(count)]
    return store_job(runtime, "test", asks, created_at=time.time() - age)


def creates(runtime: Runtime, job_id: str) -> int:
    """How many provider batches the `test` provider created for part 0 of the job."""
    raw = runtime.store.redis.hget(runtime.store.scratch("test").key("creates"), f"{job_id}:0")
    return int(raw or 0)


def run(runtime: Runtime, job_id: str, steps: list[Next]) -> None:
    """Run steps as the workers would, each scheduling the next, until none is left."""
    while steps:
        nxt = steps.pop(0)
        if nxt.step == "submit":
            steps += list(pipeline.submit(runtime, job_id))
        elif nxt.step == "poll":
            again = pipeline.poll(runtime, job_id, nxt.part)
            steps += [again] if again else []
        elif nxt.step == "fetch":
            steps += pipeline.fetch(runtime, job_id, nxt.part)


def pending(runtime: Runtime) -> dict[str, float]:
    raw = runtime.store.redis.zrange(runtime.store.pending_key(), 0, -1, withscores=True)
    return {member.decode(): score for member, score in raw}


# -- the pending set ---------------------------------------------------------------------------------------------------
def test_a_new_job_is_in_the_pending_set_by_its_creation_time_with_the_ttl(runtime: Runtime) -> None:
    job_id = new_job(runtime, age=10)
    store = runtime.store
    assert pending(runtime) == {job_id: store.load_job(job_id).created_at}
    assert store.pending_key() == f"{store.prefix}pending"  # under the store's prefix
    assert 0 < store.redis.ttl(store.pending_key()) <= TTL


@pytest.mark.parametrize("ending", ["submitted", "cancelled", "ended"])
def test_a_job_leaves_the_pending_set_when_it_leaves_pending(runtime: Runtime, ending: str) -> None:
    job_id = new_job(runtime, age=THRESHOLD + 60)
    store = runtime.store
    if ending == "submitted":
        assert [n.step for n in pipeline.submit(runtime, job_id)] in (["poll"], ["fetch"])
        assert store.load_job(job_id).state == BatchStatus.IN_PROGRESS
    elif ending == "cancelled":
        assert pipeline.request_cancel(runtime, job_id)
    else:  # a job that ends straight from pending (every part ended before submit moved it)
        assert store.transition_job(job_id, BatchStatus.FAILED, BatchStatus.PENDING, BatchStatus.IN_PROGRESS)
    assert pending(runtime) == {}
    assert pipeline.stale_submits(runtime) == []


def test_a_failed_transition_leaves_the_job_in_the_pending_set(runtime: Runtime) -> None:
    job_id = new_job(runtime)
    assert not runtime.store.transition_job(job_id, BatchStatus.COMPLETED, BatchStatus.IN_PROGRESS)
    assert list(pending(runtime)) == [job_id]


# -- the sweep's choice ------------------------------------------------------------------------------------------------
def test_a_job_whose_submit_was_lost_is_resent_once_per_threshold(runtime: Runtime) -> None:
    lost = new_job(runtime, age=THRESHOLD + 1)
    assert pipeline.stale_submits(runtime) == [lost]
    # Marked as sent: the next sweeps leave it to the submit just sent, until a threshold passes without it running.
    assert pipeline.stale_submits(runtime) == []
    assert pending(runtime)[lost] > time.time() - 60


def test_a_job_just_created_is_not_resent(runtime: Runtime) -> None:
    new_job(runtime, age=THRESHOLD - 60)
    assert pipeline.stale_submits(runtime) == []


def test_a_job_in_progress_is_not_resent(runtime: Runtime) -> None:
    job_id = new_job(runtime, age=THRESHOLD + 60)
    list(pipeline.submit(runtime, job_id))
    assert runtime.store.load_job(job_id).state == BatchStatus.IN_PROGRESS
    assert pipeline.stale_submits(runtime) == []


def test_a_submit_that_runs_holds_the_sweep_off(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """A submit that runs notes it: an old job whose submit is retrying after a busy provider is sent no second one."""
    job_id = new_job(runtime, age=THRESHOLD + 60)

    def busy(*args: object) -> None:
        raise TransientProviderError("test: 503")

    monkeypatch.setattr(runtime.provider("test"), "create", busy)
    with pytest.raises(TransientProviderError):
        list(pipeline.submit(runtime, job_id))  # the task retries it after its back-off
    assert runtime.store.load_job(job_id).state == BatchStatus.PENDING
    assert pipeline.stale_submits(runtime) == []


def test_the_sweep_resends_a_bounded_number_oldest_first(runtime: Runtime) -> None:
    jobs = [new_job(runtime, age=THRESHOLD + 100 - i, count=1) for i in range(5)]
    assert pipeline.stale_submits(runtime, limit=2) == jobs[:2]
    assert pipeline.stale_submits(runtime, limit=2) == jobs[2:4]
    assert pipeline.stale_submits(runtime, limit=2) == jobs[4:]


def test_entries_of_expired_or_vanished_jobs_are_trimmed(runtime: Runtime) -> None:
    store = runtime.store
    expired = new_job(runtime, age=TTL + 10)  # its keys' TTL has run out (deleted by hand here, as Redis would)
    store.redis.delete(*store.job_keys(expired, 1))
    vanished = new_job(runtime, age=THRESHOLD + 10)  # gone some other way, its entry left behind
    store.redis.delete(*store.job_keys(vanished, 1))
    waiting = new_job(runtime, age=THRESHOLD + 10)
    assert pipeline.stale_submits(runtime) == [waiting]
    assert list(pending(runtime)) == [waiting]


# -- a re-sent submit is safe ------------------------------------------------------------------------------------------
def test_a_lost_submit_is_resent_and_the_job_completes_with_one_batch(runtime: Runtime) -> None:
    job_id = new_job(runtime, age=THRESHOLD + 1)
    assert pipeline.stale_submits(runtime) == [job_id]
    run(runtime, job_id, [Next("submit")])
    assert runtime.store.load_job(job_id).state == BatchStatus.COMPLETED
    assert creates(runtime, job_id) == 1
    assert pending(runtime) == {}


def test_a_second_submit_creates_nothing_twice() -> None:
    """The message was only slow, not lost: it runs beside the one the sweep sent, and once more after the end."""
    settings = replace(SETTINGS, test_create_seconds=0.5)  # the first submit's create answers slowly
    runtime = Runtime(settings, Store(fakeredis.FakeRedis(), "sw:", ttl_seconds=TTL))
    job_id = new_job(runtime, age=THRESHOLD + 1)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(lambda: list(pipeline.submit(runtime, job_id)))
        wait_for(lambda: creates(runtime, job_id) == 1, "the first submit to create the batch")
        second = pool.submit(lambda: list(pipeline.submit(runtime, job_id)))  # while the first waits for its answer
        steps = first.result() + second.result()
    run(runtime, job_id, steps)
    run(runtime, job_id, [Next("submit")])  # and one more after the job ended
    assert runtime.store.load_job(job_id).state == BatchStatus.COMPLETED
    assert creates(runtime, job_id) == 1


# -- a real worker with beat -------------------------------------------------------------------------------------------
@pytest.mark.redis
def test_the_beat_sweep_submits_a_job_whose_submit_was_lost(redis_url: str, tmp_path: Path) -> None:
    # claim_timeout + sweep_interval is two seconds here, and beat's first sweep is due at once.
    setup = make_real_setup(redis_url, claim_timeout=1, sweep_interval=1, max_poll_interval=1)
    worker.use_app(setup.app)
    runtime = runtime_for(setup.app)
    try:
        lost = new_job(runtime)  # written as batch_create writes it; its submit message never reached the broker
        process = WorkerProcess(setup.env, tmp_path / "worker.log", extra=["-B", "-s", str(tmp_path / "beat")])
        try:
            done = lambda: batch_status_sync(lost).status is BatchStatus.COMPLETED  # noqa: E731
            wait_for(done, "the job to complete", log=process)
            assert f"job {lost}: still pending with no submit seen; the sweep sends one" in process.output()
            assert creates(runtime, lost) == 1
            assert batch_status_sync(lost).completed_count == 3
        finally:
            process.stop()
        assert runtime.store.redis.zcard(runtime.store.pending_key()) == 0
    finally:
        worker._current = None
        setup.cleanup()

"""Workers die: SIGKILL a real worker during submit, poll, fetch and delivery, several times, then start another.

Each time the job completes, every provider batch was created once, every result is stored once, and every callback
chunk took effect once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic_ai import ModelRequest

from batchline import BatchStatus, batch_create_sync, batch_status_sync, worker
from batchline.providers.test import TestProvider
from batchline.runtime import runtime_for
from batchline.store import Store
from batchline.store_cluster import ClusterStore

from .app_tasks import bltest_key
from .conftest import RealSetup, WorkerProcess, announced, make_real_setup
from .waiting import wait_for

pytestmark = pytest.mark.redis

FAST_RECOVERY = {
    # A killed worker's messages come back after the visibility timeout; polls must wait less than that.
    "visibility_timeout": 6,
    "max_poll_interval": 1,
    "claim_timeout": 3,
    "allowed_callbacks": "bltest.record",
}


@dataclass
class Scenario:
    setup: RealSetup
    store: Store
    log: Path
    worker: WorkerProcess
    env: dict[str, str]

    def restart(self) -> None:
        self.worker.kill()
        self.worker = WorkerProcess(self.env, self.log, extra=["-I", "tests.app_tasks"])

    def key(self, kind: str, job_id: str) -> str:
        """The test callback's key of `kind` for a job (see `app_tasks.bltest_key`)."""
        return bltest_key(self.store.prefix, kind, job_id, isinstance(self.store, ClusterStore))

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        wait_for(condition, what, timeout=timeout, log=self.worker)


@pytest.fixture(params=["redis", "cluster", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def scenario(redis_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Scenario]]:
    """Scenarios on one Redis; with the store on a 3-master Redis Cluster (the broker stays on the Redis); and with the
    broker on RabbitMQ (this session's vhost; the store stays on the Redis)."""
    made: list[Scenario] = []
    store_url = request.getfixturevalue("redis_cluster_url") if request.param == "cluster" else None
    broker_url = request.getfixturevalue("rabbitmq_vhost").url if request.param == "rabbitmq" else None

    def make(callback_seconds: float = 0.0, **settings: object) -> Scenario:
        setup = make_real_setup(redis_url, broker_url, store_url, **FAST_RECOVERY, **settings)
        env = {**setup.env, "BLTEST_CALLBACK_SECONDS": str(callback_seconds)}
        worker.use_app(setup.app)
        log = tmp_path / "worker.log"
        log.touch()
        process = WorkerProcess(env, log, extra=["-I", "tests.app_tasks"])
        made.append(Scenario(setup, runtime_for(setup.app).store, log, process, env))
        return made[-1]

    yield make
    worker._current = None
    for each in made:
        each.worker.stop()
        each.setup.cleanup()


REDIS_ONLY = pytest.mark.parametrize("scenario", ["redis", "cluster"], indirect=True)
"""Kills during poll and delivery run on RabbitMQ too (a delayed poll, an acks_late callback, both redelivered when the
worker's connection drops); submit and fetch take the same redelivery path, and would only add CI time."""


def requests(count: int) -> list[tuple[str, list[ModelRequest]]]:
    return [(f"r{i:04d}", [ModelRequest.user_text_prompt(f"question {i}")]) for i in range(count)]


def check_exactly_once(s: Scenario, job_id: str, total: int, chunks: int) -> None:
    s.wait_for(lambda: batch_status_sync(job_id).is_complete, "the job to complete", timeout=90)
    batch = batch_status_sync(job_id)
    assert batch.status is BatchStatus.COMPLETED
    redis = s.store.redis
    creates = {k.decode(): int(v) for k, v in redis.hgetall(s.store.scratch("test").key("creates")).items()}
    assert creates == {f"{job_id}:{n}": 1 for n in range(len(batch.provider_batches))}  # each part paid for once
    assert redis.hlen(s.store.job_key(job_id, ":res")) == total
    assert (batch.completed_count, batch.failed_count) == (total, 0)  # counted once each
    arrivals = announced(redis, s.store.job_key(job_id))
    assert len(arrivals) == len(set(arrivals)) == total  # announced once each
    effects, count, calls = (s.key(kind, job_id) for kind in ("effects", "effect_count", "calls"))
    s.wait_for(lambda: redis.hlen(effects) == total, "every callback effect")
    assert int(redis.get(count) or 0) == total  # no double effect
    assert int(redis.get(calls) or 0) >= chunks


@REDIS_ONLY
def test_killed_during_submit(scenario: Callable[..., Scenario], monkeypatch: pytest.MonkeyPatch) -> None:
    # Creating a part answers slowly after the batch exists: the worker dies before it can record the id.
    s = scenario(test_create_seconds=3.0)
    monkeypatch.setattr(TestProvider, "max_requests", 10)  # planned here, in the caller: three parts
    job = batch_create_sync("test", requests(30), callback="bltest.record", chunk_size=10, submit_wait=0)
    creates = s.store.scratch("test").key("creates")
    for part in range(2):
        s.wait_for(lambda p=part: s.store.redis.hexists(creates, f"{job.id}:{p}"), f"part {part} created")
        assert not s.store.part(job.id, part).provider_id  # killed between create and record
        s.restart()
    check_exactly_once(s, job.id, 30, chunks=3)
    assert "created provider batch" in s.worker.output()


def test_killed_during_poll(scenario: Callable[..., Scenario]) -> None:
    s = scenario(test_delay=7.0)
    job = batch_create_sync("test", requests(20), callback="bltest.record", chunk_size=10, poll_interval=0.3)
    assert job.status is BatchStatus.IN_PROGRESS
    for _ in range(2):
        polls = s.store.part(job.id, 0).polls
        s.wait_for(lambda p=polls: s.store.part(job.id, 0).polls > p, "a poll")
        s.restart()
    check_exactly_once(s, job.id, 20, chunks=2)


@REDIS_ONLY
def test_killed_during_fetch(scenario: Callable[..., Scenario]) -> None:
    s = scenario(test_result_seconds=0.004)  # results are stored 500 at a time: kill between the chunks
    job = batch_create_sync("test", requests(1200), callback="bltest.record", chunk_size=400, submit_wait=0)
    results = s.store.job_key(job.id, ":res")
    for low in (500, 1000):
        s.wait_for(lambda lo=low: lo <= s.store.redis.hlen(results) < 1200, f"{low}+ results stored")
        s.restart()
    check_exactly_once(s, job.id, 1200, chunks=3)


def test_killed_during_delivery(scenario: Callable[..., Scenario]) -> None:
    s = scenario(callback_seconds=1.0)
    job = batch_create_sync("test", requests(60), callback="bltest.record", chunk_size=10, submit_wait=0)
    calls = s.key("calls", job.id)
    for seen in (1, 3):
        s.wait_for(lambda n=seen: int(s.store.redis.get(calls) or 0) >= n, f"{seen} callback deliveries")
        s.restart()
    check_exactly_once(s, job.id, 60, chunks=6)

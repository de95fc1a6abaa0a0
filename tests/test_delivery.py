"""Delivery: results in chunks to the application's callback task, the summary once to on_complete, which may be a
Celery canvas of the application's own tasks (the README's example)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from celery import chain, signature
from pydantic_ai import ModelRequest

from batchline import BatchInputError, batch_create_sync, batch_results_sync, batch_wait_sync, pipeline, tasks, worker
from batchline.config import Settings
from batchline.delivery import DeliveryLease
from batchline.runtime import Runtime, runtime_for

from .conftest import RealSetup, WorkerProcess, make_real_setup
from .waiting import wait_for


def prompts(count: int) -> list[tuple[str, list[ModelRequest]]]:
    return [(f"item-{i}", [ModelRequest.user_text_prompt(f"Describe item {i}")]) for i in range(count)]


@pytest.fixture
def app_worker(redis_url: str, broker: str, tmp_path: Path) -> Iterator[RealSetup]:
    allowed = "bltest.record,bltest.summarise,bltest.notify"
    setup = make_real_setup(redis_url, broker, allowed_callbacks=allowed)
    process = WorkerProcess(setup.env, tmp_path / "worker.log", extra=["-I", "tests.app_tasks"])
    worker.use_app(setup.app)
    yield setup
    worker._current = None
    process.stop()
    setup.cleanup()


@pytest.mark.redis
def test_results_reach_the_callback_in_chunks_and_the_chain_runs_once(app_worker: RealSetup) -> None:
    # The README's example: a chain of the application's own tasks runs when the job is complete.
    on_complete = chain(signature("bltest.summarise"), signature("bltest.notify"))
    batch = batch_create_sync("test", prompts(25), callback="bltest.record", chunk_size=10, on_complete=on_complete)
    final = batch_wait_sync(batch)

    store = runtime_for(app_worker.app).store
    notified = f"{store.prefix}bltest:notified"
    wait_for(lambda: store.redis.llen(notified), "the chain's last task", timeout=30)
    # The chain was sent once: the job's completion is marked delivered, so a deliver that runs again sends nothing.
    assert store.is_delivered(batch.id, "complete")
    # So is the whole delivery step: a fetch that runs again sends none (it would, had the step never run).
    wait_for(lambda: store.is_delivered(batch.id, pipeline.DELIVERED), "the delivery step's end", timeout=30)
    assert store.redis.lrange(notified, 0, -1) == [f"{batch.id}: 25 of 25 succeeded".encode()]
    effects = store.redis.hgetall(f"{store.prefix}bltest:effects:{batch.id}")
    assert sorted(k.decode() for k in effects) == sorted(r.custom_id for r in batch_results_sync(final))
    assert int(store.redis.get(f"{store.prefix}bltest:calls:{batch.id}") or 0) == 3  # 10 + 10 + 5


def test_a_task_the_workers_do_not_allow_is_refused_before_anything_is_stored(embedded: Settings) -> None:
    store = runtime_for(worker.app).store
    before = store.job_ids(10_000)
    with pytest.raises(BatchInputError, match=r"'os\.system' is not in batchline's allowed_callbacks"):
        batch_create_sync("test", prompts(1), callback="os.system")
    with pytest.raises(BatchInputError, match=r"'evil\.task'"):
        batch_create_sync("test", prompts(1), on_complete=chain(signature("evil.task"), signature("other")))
    assert store.job_ids(10_000) == before


class Later(Exception):
    def __init__(self, countdown: float) -> None:
        self.countdown = countdown


class DeliveryTask:
    """What `_deliver` uses of its Celery task: the app's `send_task`, its message's id, and `retry`."""

    def __init__(self, message_id: str) -> None:
        self.sent: list[tuple[str, tuple[object, ...]]] = []
        self.request = SimpleNamespace(id=message_id)
        self.app = SimpleNamespace(send_task=lambda name, args: self.sent.append((name, args)))

    def retry(self, countdown: float, throw: bool) -> Later:
        return Later(countdown)


def job_to_deliver(chunk_size: int) -> tuple[Runtime, str]:
    """A job of three results, all stored, to deliver to `app.record` in chunks of `chunk_size`."""
    from .test_pipeline_steps import ended_job, make_runtime, set_job_fields

    runtime = make_runtime(allowed_callbacks=frozenset({"app.record"}))
    job_id = ended_job(runtime)
    set_job_fields(runtime, job_id, callback="app.record", chunk_size=chunk_size)
    assert pipeline.fetch(runtime, job_id, 0)
    return runtime, job_id


def test_a_second_delivery_while_one_runs_waits_for_it_and_no_chunk_goes_twice() -> None:
    """A fetch that runs again sends a delivery step while the first may still run: both checked a chunk, then both
    sent it. One at a time now: the lease is renewed as chunks go, and freed only by its holder."""
    runtime, job_id = job_to_deliver(chunk_size=2)
    store = runtime.store
    key = store.job_key(job_id, ":delivering")
    first, second = DeliveryTask("d1"), DeliveryTask("d2")
    held = DeliveryLease(store.redis, key, "d1")
    assert held.take()  # the first delivery is under way
    with pytest.raises(Later) as later:
        tasks._deliver(second, runtime, job_id)  # type: ignore[arg-type]
    assert second.sent == [] and 0 < later.value.countdown <= DeliveryLease.SECONDS
    assert store.redis.get(key) == b"d1"  # the second one freed nothing that was not its own
    held.free()
    tasks._deliver(first, runtime, job_id)  # type: ignore[arg-type]
    assert [name for name, _ in first.sent] == ["app.record", "app.record"]  # three results, two to a chunk
    assert not store.redis.exists(key)
    tasks._deliver(second, runtime, job_id)  # type: ignore[arg-type]  # its retry: all was delivered
    assert second.sent == []


def test_a_delivery_lease_is_renewed_and_freed_only_by_its_holder() -> None:
    import fakeredis

    redis = fakeredis.FakeRedis()
    mine, theirs = DeliveryLease(redis, "lease", "a"), DeliveryLease(redis, "lease", "b")
    assert mine.take() and not theirs.take()
    redis.expire("lease", 5)
    assert theirs.renew() is False
    theirs.free()
    assert redis.get("lease") == b"a" and redis.ttl("lease") <= 5
    assert mine.renew() is True
    assert redis.ttl("lease") > 5
    mine.free()
    assert theirs.take()


def test_a_delivery_that_stalled_past_its_lease_stops_and_leaves_the_rest_to_the_holder() -> None:
    runtime, job_id = job_to_deliver(chunk_size=1)
    store = runtime.store
    key = store.job_key(job_id, ":delivering")
    stalled = DeliveryTask("d1")

    def send_then_stall(name: str, args: tuple[object, ...]) -> None:
        stalled.sent.append((name, args))
        store.redis.set(key, "another", ex=60)  # its lease ran out while it stalled; another delivery took it

    stalled.app = SimpleNamespace(send_task=send_then_stall)
    with pytest.raises(Later):
        tasks._deliver(stalled, runtime, job_id)  # type: ignore[arg-type]
    assert len(stalled.sent) == 1  # no second chunk beside the holder's
    assert store.redis.get(key) == b"another"  # and the holder's lease is left alone


def test_a_delivery_whose_worker_died_resumes_at_once_when_its_message_comes_back() -> None:
    """The message of a delivery killed mid-way comes back at once (reject_on_worker_lost): it waited out its dead
    worker's lease, two minutes, before sending what was left."""
    runtime, job_id = job_to_deliver(chunk_size=1)
    store = runtime.store
    assert DeliveryLease(store.redis, store.job_key(job_id, ":delivering"), "m1").take()  # then the worker died
    with pytest.raises(Later):
        tasks._deliver(DeliveryTask("another"), runtime, job_id)  # type: ignore[arg-type]
    again = DeliveryTask("m1")  # the same message, redelivered
    tasks._deliver(again, runtime, job_id)  # type: ignore[arg-type]
    assert [name for name, _ in again.sent] == ["app.record"] * 3
    assert store.is_delivered(job_id, pipeline.DELIVERED)

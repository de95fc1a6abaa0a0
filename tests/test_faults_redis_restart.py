"""Redis restarts under busy workers: a Redis of the test's own (append-only file, `appendfsync everysec`) is shut
down or SIGKILLed and started again on the same port and directory during submit, poll, fetch and delivery of an
`openai:` job, with two real workers running.

Each time no worker exits, the job completes, every result is stored once, every callback effect happens once, and
the emulator created one provider batch. The broker's visibility timeout is ten minutes here, far beyond the wait:
what comes back must come back because the workers give their messages back, not because the timeout expired.

The soak (`uv run pytest tests/test_faults_redis_restart.py -m soak -s`) restarts Redis ten times per stage.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import fakeredis
import pytest
import redis
import yaml
from celery import Celery
from celery.exceptions import Reject
from kombu import Connection, Exchange, Queue
from kombu.exceptions import OperationalError
from kombu.message import Message
from pydantic_ai import ModelRequest
from pydantic_ai.models.batch import BatchRequest

from batchline import (
    BatchStatus,
    batch_cancel_sync,
    batch_create_sync,
    batch_list_sync,
    batch_results_sync,
    batch_status_sync,
    batch_wait_sync,
    pipeline,
    tasks,
    transport,
    worker,
)
from batchline.config import Settings
from batchline.emulator import BatchFault, Emulator, HttpFault
from batchline.records import PartState
from batchline.runtime import Runtime, runtime_for
from batchline.store import Store

from . import waiting
from .conftest import ROOT, WorkerProcess, announced, make_real_setup, store_job
from .openai_anthropic_helpers import ask, fresh_runtime, provider_env

MODEL = "openai:gpt-4o-mini"
SETTINGS = {
    # Far beyond any wait here: a message that only the visibility timeout would bring back leaves its job stuck.
    "visibility_timeout": 600,
    "max_poll_interval": 1,
    "claim_timeout": 3,
    "allowed_callbacks": "bltest.record",
}
CALLBACK_SECONDS = 2.0


class OwnRedis:
    """`redis-server` on a free port with an append-only file, restartable on the same port and directory."""

    def __init__(self, directory: Path) -> None:
        if shutil.which("redis-server") is None:
            message = "these tests start their own redis-server (apt-get install redis-server)"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        self.directory = directory
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.restarts = 0
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        command += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
        with (self.directory / "redis.log").open("ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port)

        def answers() -> bool:
            assert process.poll() is None, (self.directory / "redis.log").read_text()
            return bool(client.ping())  # answers only once the append-only file is loaded

        waiting.wait_for(answers, "redis-server to start", timeout=30, interval=0.02, ignoring=(redis.RedisError,))
        return process

    def restart(self, how: str, down_seconds: float = 0.3) -> None:
        """`shutdown` (Redis writes its file and exits) or `kill` (SIGKILL), then start it again after a pause."""
        if how == "shutdown":
            subprocess.run(["redis-cli", "-p", str(self.port), "shutdown"], capture_output=True, check=False)
        else:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        time.sleep(down_seconds)
        self.process = self._start()
        self.restarts += 1

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


@dataclass
class Cluster:
    redis: OwnRedis
    store: Store
    workers: list[WorkerProcess]
    emulator: Emulator
    app: Celery

    def assert_workers_alive(self) -> None:
        for each in self.workers:
            output = each.output()
            assert each.process.poll() is None, f"a worker exited:\n{output[-3000:]}"
            assert "Unrecoverable error" not in output, output[-3000:]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, emulator_server: Emulator) -> Iterator[Cluster]:
    """One Redis and two workers for the module: the same workers ride out every restart."""
    directory = tmp_path_factory.mktemp("redis-restart")
    own = OwnRedis(directory)
    setup = make_real_setup(own.url, **SETTINGS)
    env = {**setup.env, **provider_env(emulator_server), "BLTEST_CALLBACK_SECONDS": str(CALLBACK_SECONDS)}

    def start(n: int) -> WorkerProcess:
        log = directory / f"worker{n}.log"
        log.touch()
        return WorkerProcess(env, log, extra=["-I", "tests.app_tasks"])

    workers: list[WorkerProcess] = []
    try:
        with ThreadPoolExecutor(2) as pool:
            workers += pool.map(start, range(2))
        yield Cluster(own, runtime_for(setup.app).store, workers, emulator_server, setup.app)
    finally:
        for each in workers:
            each.stop()
        own.stop()


@pytest.fixture
def via(cluster: Cluster) -> Iterator[Cluster]:
    """This process's API sends through the cluster's Redis."""
    worker.use_app(cluster.app)
    try:
        yield cluster
    finally:
        worker._current = None


def requests(count: int) -> list[tuple[str, list[ModelRequest]]]:
    return [(f"r{i:04d}", [ModelRequest.user_text_prompt(f"question {i}")]) for i in range(count)]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Wait for `condition`, which may find Redis restarting (then it is asked again)."""
    waiting.wait_for(condition, what, timeout=timeout, ignoring=(redis.ConnectionError,))


def calls(emulator: Emulator, endpoint: str) -> int:
    return int(emulator.stats()["calls"].get(endpoint, 0))


TOTAL = 200
CHUNK = 50


def run_once(c: Cluster, stage: str, how: str) -> None:
    """One job, one Redis restart during `stage`, then every check a user would make."""
    emulator = c.emulator
    emulator.reset()
    emulator.configure(stage_seconds=1.5 if stage == "poll" else 0.0)
    restarts = c.redis.restarts
    options: dict[str, object] = {"submit_wait": 0, "poll_interval": 0.3}
    if stage == "submit":
        emulator.add_fault(HttpFault(kind="slow", delay=2.0, method="POST", path=r"/v1/batches$", times=1))
    elif stage == "fetch":
        emulator.add_fault(HttpFault(kind="slow", delay=2.0, method="GET", path=r"/content$", times=1))
    else:
        options |= {"callback": "bltest.record", "chunk_size": CHUNK}
    job = batch_create_sync(MODEL, requests(TOTAL), **options)  # type: ignore[arg-type]
    prefix = c.store.prefix
    if stage == "submit":
        wait_for(lambda: calls(emulator, "POST /v1/batches") >= 1, "the create call")
    elif stage == "poll":
        wait_for(lambda: calls(emulator, "GET /v1/batches/{batch_id}") >= 2, "two polls")
    elif stage == "fetch":
        wait_for(lambda: calls(emulator, "GET /v1/files/{file_id}/content") >= 1, "the download")
    else:
        wait_for(lambda: int(c.store.redis.get(f"{prefix}bltest:calls:{job.id}") or 0) >= 1, "a callback running")
    c.redis.restart(how)

    wait_for(lambda: batch_status_sync(job.id).is_complete, f"the job to complete after a restart in {stage}", 90)
    batch = batch_status_sync(job.id)
    assert batch.status is BatchStatus.COMPLETED
    assert emulator.stats()["openai"]["batches_created"] == 1  # the provider batch was created (paid for) once
    assert (batch.completed_count, batch.failed_count) == (TOTAL, 0)  # counted once each
    assert c.store.redis.hlen(f"{prefix}job:{job.id}:res") == TOTAL  # stored once each
    arrivals = announced(c.store.redis, f"{prefix}job:{job.id}")
    assert len(arrivals) == len(set(arrivals)) == TOTAL  # announced once each
    if stage == "deliver":
        effects = f"{prefix}bltest:effects:{job.id}"
        wait_for(lambda: c.store.redis.hlen(effects) == TOTAL, "every callback effect")
        assert int(c.store.redis.get(f"{prefix}bltest:effect_count:{job.id}") or 0) == TOTAL  # none twice
    assert c.redis.restarts == restarts + 1
    c.assert_workers_alive()


@pytest.mark.redis
@pytest.mark.parametrize(("stage", "how"), [("submit", "shutdown"), ("poll", "kill"), ("fetch", "kill")])
def test_a_redis_restart_during_a_step(via: Cluster, stage: str, how: str) -> None:
    run_once(via, stage, how)


@pytest.mark.redis
def test_a_redis_restart_during_delivery(via: Cluster) -> None:
    run_once(via, "deliver", "shutdown")


RUNS = int(os.environ.get("BLTEST_SOAK_RUNS", "10"))


@pytest.mark.redis
@pytest.mark.soak
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("stage", ["submit", "poll", "fetch", "deliver"])
def test_soak_redis_restarts(via: Cluster, stage: str) -> None:
    """RUNS jobs in a row on the same two workers, one restart each, shutdown and SIGKILL in turn."""
    started = time.monotonic()
    for run in range(RUNS):
        run_once(via, stage, "shutdown" if run % 2 == 0 else "kill")
    # The figures docs/RELIABILITY.md records (every check above passed, so nothing was lost, doubled or stuck).
    print(
        f"\nsoak stage={stage} runs={RUNS} restarts={RUNS} requests={RUNS * TOTAL} "
        f"lost=0 duplicated=0 stuck=0 seconds={time.monotonic() - started:.0f}"
    )


# -- what a Redis that lost its last second of writes costs ------------------------------------------------------------
def _job_with_one_part(runtime: Runtime, model: str, count: int) -> str:
    return store_job(runtime, model, [BatchRequest(custom_id=f"r{i}", messages=ask(f"q {i}")) for i in range(count)])


def _lose_the_record(store: Store, job_id: str) -> None:
    """What an append-only file that lost its last second keeps of a part created in that second: the claim (written
    before the create call), not what the create's answer wrote after it (the id, the state)."""
    key = store.part_key(job_id, 0)
    store.redis.hdel(key, "provider_id", "provider_status", "provider_state", "details")
    store.redis.hset(key, "state", PartState.PENDING)
    store.redis.zrem(f"{store.prefix}polls", f"{job_id}:0")


def _age_the_claim(store: Store, job_id: str, seconds: float) -> None:
    """The redelivered submit's countdown of `claim_timeout` has passed."""
    token = store.part(job_id, 0).claim.rpartition(":")[0]
    store.redis.hset(store.part_key(job_id, 0), "claim", f"{token}:{time.time() - seconds}")


@pytest.fixture
def providers_at_emulator(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    for name, value in provider_env(emulator).items():
        monkeypatch.setenv(name, value)
    emulator.configure(stage_seconds=30)  # batches run until the test moves the clock
    return emulator


def test_a_lost_openai_batch_id_is_found_by_its_metadata_not_created_again(providers_at_emulator: Emulator) -> None:
    emulator = providers_at_emulator
    runtime = Runtime(Settings(claim_timeout=600), Store(fakeredis.FakeRedis(), "lost:"))
    store = runtime.store
    job_id = _job_with_one_part(runtime, MODEL, 3)
    assert [n.step for n in pipeline.submit(runtime, job_id)] == ["poll"]
    created = store.part(job_id, 0).provider_id
    _lose_the_record(store, job_id)

    # The submit message comes back (its acknowledgement was lost too): the claim says another worker may be creating.
    again = list(pipeline.submit(runtime, job_id))
    assert [(n.step, n.countdown) for n in again] == [("submit", 600)]
    assert not store.part(job_id, 0).provider_id
    # claim_timeout later the next submit lists the provider's batches and finds the part's by its metadata.
    _age_the_claim(store, job_id, 601)
    assert [n.step for n in pipeline.submit(runtime, job_id)] in (["poll"], ["fetch"])
    assert store.part(job_id, 0).provider_id == created
    assert emulator.stats()["openai"]["batches_created"] == 1  # not created (paid for) again
    assert emulator.stats()["calls"]["POST /v1/batches"] == 1


def test_a_lost_anthropic_batch_id_fails_its_part_rather_than_paying_twice(providers_at_emulator: Emulator) -> None:
    emulator = providers_at_emulator
    model = "anthropic:claude-sonnet-4-5"
    runtime = Runtime(Settings(claim_timeout=600), Store(fakeredis.FakeRedis(), "lost:"))
    store = runtime.store
    job_id = _job_with_one_part(runtime, model, 3)
    list(pipeline.submit(runtime, job_id))
    _lose_the_record(store, job_id)
    _age_the_claim(store, job_id, 601)

    assert [n.step for n in pipeline.submit(runtime, job_id)] == ["fetch"]
    part = store.part(job_id, 0)
    assert part.state == PartState.ENDED and part.provider_state == "failed"
    assert "cannot be found by listing" in part.error
    pipeline.fetch(runtime, job_id, 0)
    assert store.load_job(job_id).state == BatchStatus.FAILED
    assert emulator.stats()["anthropic"]["batches_created"] == 1  # the lost batch runs on, unread; none is added


# -- broker down, store up: no orphan job ------------------------------------------------------------------------------
@pytest.mark.redis
def test_a_job_whose_submit_the_broker_refuses_is_removed(tmp_path: Path) -> None:
    store_redis = OwnRedis(tmp_path)
    try:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            dead = sock.getsockname()[1]  # nothing listens here once the socket is closed
        settings = Settings.load(
            {}, {"BATCHLINE_BROKER_URL": f"redis://127.0.0.1:{dead}/0", "BATCHLINE_REDIS_URL": store_redis.url}
        )
        app = Celery("broker-down", set_as_current=False)
        worker.install(app, settings)
        app.conf.broker_connection_timeout = 1
        with pytest.raises(OperationalError, match="the job was removed and nothing was sent"):
            batch_create_sync("test", requests(5), submit_wait=0)
        assert batch_list_sync() == []  # `batchline jobs` shows nothing pending
        assert redis.Redis.from_url(store_redis.url).keys("*") == []  # nothing left behind
    finally:
        worker._current = None
        store_redis.stop()


# -- a job that ends in any way forgets its request bodies (they hold the prompts) -------------------------------------
@pytest.fixture
def embedded_openai(providers_at_emulator: Emulator, embedded: Settings) -> Iterator[Emulator]:
    fresh_runtime()
    yield providers_at_emulator
    fresh_runtime()


@pytest.mark.parametrize("ending", ["completed", "failed", "expired", "cancelled"])
def test_every_ending_drops_the_request_bodies(embedded_openai: Emulator, ending: str) -> None:
    emulator = embedded_openai
    if ending in ("failed", "expired"):
        outcome = "fail" if ending == "failed" else "expire"
        emulator.add_fault(BatchFault(outcome=outcome, provider="openai", done_fraction=0.0))
    batch = batch_create_sync(MODEL, requests(4), poll_interval=0.1, max_resubmissions=0)
    store = runtime_for(worker.app).store
    assert batch.status is BatchStatus.IN_PROGRESS
    assert store.redis.exists(store.job_key(batch.id, ":req"))  # kept while the job runs
    if ending == "cancelled":
        batch_cancel_sync(batch.id)
        wait_for(lambda: calls(emulator, "POST /v1/batches/{batch_id}/cancel") >= 1, "the cancel call")
    emulator.advance_clock(3600)  # the batch's stages pass
    final = batch_wait_sync(batch.id)
    assert final.status.value == ending
    assert not store.redis.exists(store.job_key(batch.id, ":req"))
    assert len(batch_results_sync(batch.id)) == 4  # the results stay


# -- docker compose: the restart policy is the second line of defence -------------------------------------------------
def test_compose_restarts_a_process_that_exits_and_redis_keeps_its_writes() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("redis", "worker", "beat", "flower"):
        assert services[name]["restart"] == "unless-stopped"
    command = services["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
    # Workers ride out a Redis restart themselves: compose must not restart them with it.
    assert "restart" not in services["worker"]["depends_on"]["redis"]


# -- the pieces on their own -------------------------------------------------------------------------------------------
@pytest.mark.redis
def test_a_channel_closed_while_redis_is_down_gives_its_messages_back_on_reconnection(tmp_path: Path) -> None:
    own = OwnRedis(tmp_path)
    try:
        transport.use_shared_client_transport()
        queue = Queue("restart-q", Exchange("restart-q"), "k")
        client = redis.Redis(port=own.port)
        # An hour of visibility timeout: only the transport giving the message back can bring it back now.
        connection = Connection(own.url, transport_options={"visibility_timeout": 3600})
        with connection.Producer() as producer:
            producer.publish({"step": 1}, exchange=queue.exchange, routing_key="k", declare=[queue])
        held: list[Message] = []
        connection.Consumer(queue, callbacks=[lambda body, message: held.append(message)]).consume()
        connection.drain_events(timeout=5)
        assert client.llen("restart-q") == 0 and client.hlen("unacked") == 1  # delivered, not acknowledged

        own.process.send_signal(signal.SIGKILL)  # Redis goes away; the worker's consumer closes as Celery does it
        own.process.wait(30)
        with contextlib.suppress(Exception):
            connection.collect(socket_timeout=1)
        connection.close()  # it cannot give the message back: Redis is down
        own.process = own._start()
        client = redis.Redis(port=own.port)
        # Redis is back; the message is only in the unacked hash, where stock kombu leaves it for the hour.
        assert client.llen("restart-q") == 0

        with Connection(own.url) as again:
            assert again.default_channel is not None  # the next channel gives back what the closed one held
            assert client.llen("restart-q") == 1 and client.hlen("unacked") == 0
            held[0].ack()  # the step that held it finishes late: its acknowledgement neither fails nor doubles it
            assert client.llen("restart-q") == 1
    finally:
        own.stop()


def test_a_step_that_cannot_reach_redis_is_requeued_not_acknowledged(
    embedded: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*args: object, **kwargs: object) -> None:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")

    monkeypatch.setattr(tasks, "_OUTAGE_PAUSE", 0.0)
    monkeypatch.setattr(pipeline, "poll", unreachable)
    with pytest.raises(Reject) as rejected:
        tasks.poll.run("batch_x", 0)
    assert rejected.value.requeue is True  # Celery would have acknowledged a failure, losing the step


def test_a_retry_the_broker_could_not_take_is_requeued_not_dropped(
    embedded: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Task.retry` rejects without requeue when it cannot publish the retry; during an outage that loses the step."""

    def retry_not_published(*args: object, **kwargs: object) -> None:
        raise Reject(OperationalError("Error 111 connecting to 127.0.0.1:6390."), requeue=False)

    monkeypatch.setattr(tasks, "_OUTAGE_PAUSE", 0.0)
    monkeypatch.setattr(pipeline, "poll", retry_not_published)
    with pytest.raises(Reject) as rejected:
        tasks.poll.run(job_id="batch_x", part=0)  # keyword arguments, as a canvas may send them
    assert rejected.value.requeue is True

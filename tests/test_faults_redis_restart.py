"""Redis restarts under busy workers: a Redis of the test's own (append-only file, `appendfsync everysec`) is shut
down or SIGKILLed and started again on the same port and directory during submit, poll, fetch and delivery of an
`openai:` job, with two real workers running.

Each time no worker exits, the job completes, every result is stored once, every callback effect happens once, and
the emulator created one provider batch. The broker's visibility timeout is ten minutes here, far beyond the wait:
what comes back must come back because the workers give their messages back, not because the timeout expired.

The soak (`uv run pytest tests/test_faults_redis_restart.py -m soak -s`) restarts Redis ten times per stage.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from celery import Celery
from pydantic_ai import ModelRequest

from batchline import BatchStatus, batch_create_sync, batch_status_sync, worker
from batchline.emulator import Emulator, HttpFault
from batchline.runtime import runtime_for
from batchline.store import Store

from .conftest import WorkerProcess, announced, make_real_setup
from .openai_anthropic_helpers import provider_env

pytestmark = pytest.mark.redis

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
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()  # answers only once the append-only file is loaded
                return process
            except redis.RedisError:
                assert process.poll() is None, (self.directory / "redis.log").read_text()
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)

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
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except redis.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


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


@pytest.mark.parametrize(("stage", "how"), [("submit", "shutdown"), ("poll", "kill"), ("fetch", "kill")])
def test_a_redis_restart_during_a_step(via: Cluster, stage: str, how: str) -> None:
    run_once(via, stage, how)


def test_a_redis_restart_during_delivery(via: Cluster) -> None:
    run_once(via, "deliver", "shutdown")


RUNS = int(os.environ.get("BLTEST_SOAK_RUNS", "10"))


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

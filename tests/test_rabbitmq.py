"""RabbitMQ's consumer_timeout and a broker restart, on a private RabbitMQ node whose consumer_timeout is 8 seconds.

RabbitMQ closes a channel whose delivery stays unacknowledged past `consumer_timeout` (30 minutes by default, the same
as batchline's poll cap). A plain Celery countdown is such a delivery: the worker takes it at once and holds it until
it is due. batchline's queues are quorum queues on topic exchanges, so Celery sends a countdown to the broker's delay
queues and the worker only gets it when it is due. With the timeout lowered to 8 seconds and polls 12 seconds apart,
the naive countdown's channel is closed and its message redelivered; batchline's polls wait in the broker and no
channel is closed. The node is this module's own (see rabbitmq_helpers.PrivateRabbit): the machine's shared broker is
never reconfigured or restarted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pydantic_ai import ModelRequest

from batchline import BatchStatus, batch_create_sync, batch_status_sync, worker
from batchline.runtime import runtime_for

from . import naive_countdown
from .conftest import ROOT, RealSetup, WorkerProcess, make_real_setup
from .rabbitmq_helpers import PrivateRabbit, rabbitmqctl
from .waiting import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.rabbitmq]

CONSUMER_TIMEOUT_MS = 8000
TIMED_OUT = "delivery acknowledgement on channel"
"""The start of RabbitMQ's PRECONDITION_FAILED reply when it closes a channel for consumer_timeout."""


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateRabbit]:
    private = PrivateRabbit(consumer_timeout_ms=CONSUMER_TIMEOUT_MS)
    try:
        yield private
    finally:
        private.stop()  # whatever a test left it in: stopped app, running, or half restarted


@pytest.fixture
def batchline_worker(node: PrivateRabbit, redis_url: str, tmp_path: Path) -> Iterator[tuple[RealSetup, WorkerProcess]]:
    setup = make_real_setup(redis_url, node.url, max_poll_interval=12, test_delay=26)
    process = WorkerProcess(setup.env, tmp_path / "worker.log")
    worker.use_app(setup.app)
    try:
        yield setup, process
    finally:
        worker._current = None
        process.stop()
        setup.cleanup()


def requests(count: int) -> list[tuple[str, list[ModelRequest]]]:
    return [(f"r{i:04d}", [ModelRequest.user_text_prompt(f"question {i}")]) for i in range(count)]


def delayed_messages(node: PrivateRabbit) -> int:
    """Messages waiting in the broker's delay queues (Celery's `celery_delayed_<level>`)."""
    rows = rabbitmqctl("list_queues", "name", "messages", "--no-table-headers", node=node.node).splitlines()
    return sum(int(count) for name, count in (row.split() for row in rows) if name.startswith("celery_delayed_"))


class _Log:
    def __init__(self, path: Path) -> None:
        self.path = path

    def output(self) -> str:
        return self.path.read_text(errors="replace")


def test_a_naive_countdown_is_cut_off_by_consumer_timeout(node: PrivateRabbit, redis_url: str, tmp_path: Path) -> None:
    token = uuid.uuid4().hex[:10]
    key, queue = f"bltest-{token}:naive-runs", f"naive-{token}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATCHLINE_")},
        "NAIVE_BROKER_URL": node.url,
        "NAIVE_QUEUE": queue,
        "NAIVE_REDIS_URL": redis_url,
        "NAIVE_KEY": key,
    }
    log = _Log(tmp_path / "naive.log")
    command = [sys.executable, "-m", "celery", "-A", "tests.naive_countdown", "worker", "--loglevel=INFO", "-P", "solo"]
    with log.path.open("ab") as out:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    client = redis.Redis.from_url(redis_url)
    try:
        wait_for(lambda: " ready." in log.output(), "the naive worker to be ready", timeout=60, log=log)
        naive_countdown.app.conf.update(broker_url=node.url, task_default_queue=queue)
        naive_countdown.wait.apply_async(countdown=20)
        # The worker takes the countdown at once and holds it unacknowledged; 8 s later the broker closes its channel,
        # which Celery calls unrecoverable: the worker exits, long before the task was due.
        wait_for(lambda: process.poll() is not None, "the naive worker to exit", timeout=30, log=log)
        output = log.output()
        assert TIMED_OUT in output and "Unrecoverable error" in output, output[-3000:]
        assert client.llen(key) == 0  # it never ran
        assert ready_messages(node, queue) == 1  # back in the queue, for the next worker to hold and lose again
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=30)
        client.delete(key)


def ready_messages(node: PrivateRabbit, queue: str) -> int:
    rows = rabbitmqctl("list_queues", "name", "messages_ready", "--no-table-headers", node=node.node).splitlines()
    return sum(int(count) for name, count in (row.split() for row in rows) if name == queue)


def test_batchline_polls_wait_in_the_broker_past_consumer_timeout(
    node: PrivateRabbit, batchline_worker: tuple[RealSetup, WorkerProcess]
) -> None:
    setup, process = batchline_worker
    job = batch_create_sync("test", requests(20), poll_interval=12)
    assert job.status is BatchStatus.IN_PROGRESS
    # While the provider's batch runs (26 s), each poll waits 12 s: in a delay queue, not in the worker.
    wait_for(lambda: delayed_messages(node) >= 1, "a poll in the delay queues", timeout=30, log=process)
    wait_for(lambda: batch_status_sync(job.id).is_complete, "the job to complete", timeout=90, log=process)
    status = batch_status_sync(job.id)
    assert (status.status, status.completed_count) == (BatchStatus.COMPLETED, 20)
    assert runtime_for(setup.app).store.part(job.id, 0).polls >= 2  # it waited more than once, 12 s each
    output = process.output()
    assert TIMED_OUT not in output and "PRECONDITION_FAILED" not in output, output[-3000:]


def test_a_rabbitmq_restart_under_load(node: PrivateRabbit, batchline_worker: tuple[RealSetup, WorkerProcess]) -> None:
    setup, process = batchline_worker
    store = runtime_for(setup.app).store
    jobs = [batch_create_sync("test", requests(200), poll_interval=2, chunk_size=50) for _ in range(3)]
    wait_for(lambda: delayed_messages(node) >= 1, "polls waiting in the broker", timeout=30)
    node.stop_app()  # every connection dropped, the delay queues and batchline's queue kept on disk
    time.sleep(3)
    node.start_app()
    for job in jobs:
        wait_for(lambda j=job.id: batch_status_sync(j).is_complete, "every job to complete", timeout=120, log=process)
        status = batch_status_sync(job.id)
        assert (status.status, status.completed_count, status.failed_count) == (BatchStatus.COMPLETED, 200, 0)
        assert store.redis.hlen(f"{store.prefix}job:{job.id}:res") == 200
        creates = {k.decode(): int(v) for k, v in store.redis.hgetall(f"{store.prefix}test:creates").items()}
        assert all(count == 1 for part, count in creates.items() if part.startswith(job.id))  # paid for once
    assert process.process.poll() is None, "the worker exited"
    assert "Connection to broker lost" in process.output()  # it did see the broker go

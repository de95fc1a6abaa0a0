"""What operators see: Flower shows every step by name and state, the sweep heals lost polls, and nothing a job
leaves behind (broker messages, result backend, store, Flower, logs) holds the API key or the prompt."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import redis
from celery.result import AsyncResult
from pydantic_ai import ModelRequest

from batchline import BatchStatus, batch_create_sync, batch_results_sync, batch_status_sync, batch_wait_sync, worker
from batchline.runtime import runtime_for

from .conftest import ROOT, RealSetup, WorkerProcess, make_real_setup
from .waiting import stop_group, wait_for

pytestmark = pytest.mark.redis

API_KEY = f"sk-batchline-{uuid.uuid4().hex}"
PROMPT = f"confidential prompt {uuid.uuid4().hex}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Flower:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.auth = ("ops", "s3cret")
        command = [sys.executable, "-m", "celery", "-A", "batchline.worker", "flower"]
        command += [f"--port={self.port}", "--address=127.0.0.1", f"--basic_auth={':'.join(self.auth)}"]
        self.log_path = log
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.url = f"http://127.0.0.1:{self.port}"

        def healthy() -> bool:
            assert self.process.poll() is None, self.output()[-2000:]
            return httpx2.get(f"{self.url}/healthcheck", timeout=1).status_code == 200

        wait_for(healthy, "Flower to answer", interval=0.2, log=self, ignoring=(httpx2.TransportError,))

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> httpx2.Response:
        return httpx2.get(f"{self.url}{path}", auth=self.auth, timeout=10)

    def stop(self) -> None:
        stop_group(self.process, self.process.terminate)
        self.log.close()


class BrokerTap:
    """Every command the broker's Redis database receives, as `MONITOR` shows it (message bodies included)."""

    def __init__(self, url: str, db: int) -> None:
        self.lines: list[str] = []
        self.db = db
        self.pool = redis.ConnectionPool.from_url(url)
        self.monitor = redis.Redis(connection_pool=self.pool).monitor()
        self.connection = self.monitor.__enter__()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for command in self.connection.listen():
                if command.get("db") == self.db:
                    self.lines.append(str(command.get("command")))
        except (redis.ConnectionError, ValueError, AttributeError):
            return

    def stop(self) -> str:
        self.pool.disconnect()
        self.thread.join(5)
        return "\n".join(self.lines)


@pytest.fixture
def isolated(redis_url: str, tmp_path: Path) -> Iterator[tuple[RealSetup, WorkerProcess, Flower]]:
    """Broker and result backend on Redis database 1, the store on database 0, so each can be searched alone."""
    broker = redis_url.rsplit("/", 1)[0] + "/1"
    setup = make_real_setup(redis_url, broker_url=broker, result_backend=broker, test_result_seconds=0.002)
    env = {**setup.env, "OPENAI_API_KEY": API_KEY, "ANTHROPIC_API_KEY": API_KEY, "GEMINI_API_KEY": API_KEY}
    worker.use_app(setup.app)
    process = WorkerProcess(env, tmp_path / "worker.log")
    flower = Flower(env, tmp_path / "flower.log")
    yield setup, process, flower
    worker._current = None
    flower.stop()
    process.stop()
    setup.cleanup()  # the store's keys on database 0, the broker's and the task results on database 1


def test_flower_shows_every_step_and_no_secret_is_left_anywhere(
    isolated: tuple[RealSetup, WorkerProcess, Flower], caplog: pytest.LogCaptureFixture
) -> None:
    setup, process, flower = isolated
    broker_url = setup.settings.broker_url
    assert broker_url
    tap = BrokerTap(broker_url, db=1)
    requests = [(f"q{i}", [ModelRequest.user_text_prompt(f"{PROMPT} #{i}")]) for i in range(1200)]
    batch = batch_create_sync("test", requests, poll_interval=0.5, submit_wait=0)

    # While the results stream in (slowly here), Flower shows the fetch in state PROGRESS, whose completed/total
    # the result backend holds.
    def fetch_progress() -> object:
        for task_id, task in flower.get("/api/tasks").json().items():
            state = flower.get(f"/api/task/result/{task_id}").json().get("state")
            if task["name"] == "batchline.fetch" and state == "PROGRESS":
                return AsyncResult(task_id, app=setup.app).info
        return None

    progress = wait_for(fetch_progress, "Flower to show the fetch in state PROGRESS", timeout=30)
    assert progress in ({"completed": 500, "total": 1200}, {"completed": 1000, "total": 1200})
    final = batch_wait_sync(batch)
    assert final.status is BatchStatus.COMPLETED and final.completed_count == 1200
    assert len(batch_results_sync(final)) == 1200

    # Flower, behind basic auth, knows each step by name, with its state and a progress event. It hears the last
    # events over the broker after the job ended: wait until it has them.
    assert httpx2.get(f"{flower.url}/api/tasks", timeout=10).status_code == 401

    def every_step_succeeded() -> dict[str, dict[str, str]]:
        tasks: dict[str, dict[str, str]] = flower.get("/api/tasks").json()
        ours = [task for task in tasks.values() if task["name"].startswith("batchline.")]
        names = {task["name"] for task in ours}
        done = {"batchline.submit", "batchline.fetch", "batchline.deliver"} <= names
        return tasks if done and all(task["state"] == "SUCCESS" for task in ours) else {}

    tasks = wait_for(every_step_succeeded, "Flower to show submit, fetch and deliver, each in state SUCCESS")
    broker_traffic = tap.stop()
    fetch_id = next(tid for tid, task in tasks.items() if task["name"] == "batchline.fetch")
    fetch = flower.get(f"/api/task/info/{fetch_id}").json()
    assert fetch["args"] == repr([batch.id, 0]) or batch.id in str(fetch["args"])
    assert "'succeeded': 1200" in str(fetch["result"])
    # The result backend holds the progress of the last fetch chunk and the summaries.
    backend = redis.Redis.from_url(broker_url)
    assert backend.get(f"{setup.settings.celery_key_prefix}celery-task-meta-{fetch_id}") is not None

    # Nothing a job leaves behind holds the key or the prompt.
    flower_answers = flower.get("/api/tasks").text + "".join(flower.get(f"/api/task/info/{t}").text for t in tasks)
    broker_db = "".join(str(backend.dump(key)) for key in backend.scan_iter(match="*") if not key.startswith(b"_kombu"))
    store = runtime_for(setup.app).store
    store_dump = "".join(f"{key!r}{store.redis.dump(key)!r}" for key in store.redis.scan_iter(match=f"{store.prefix}*"))
    logs = process.output() + caplog.text + flower.log_path.read_text(errors="replace")
    places = {
        "broker messages": broker_traffic,
        "broker and result backend": broker_db,
        "store": store_dump,
        "Flower": flower_answers,
        "logs": logs,
    }
    assert broker_traffic.count("batchline.") > 5 and len(store_dump) > 1000  # the places were really searched
    for secret in (API_KEY, PROMPT):
        hits = [place for place, text in places.items() if secret in text]
        assert hits == [], f"{secret[:12]}... found in {hits}"
    assert batch_status_sync(batch.id).is_complete


def test_the_sweep_picks_up_polls_a_killed_worker_left(redis_url: str, tmp_path: Path) -> None:
    # A long visibility timeout: the broker would not give the killed worker's poll back for an hour.
    setup = make_real_setup(redis_url, test_delay=4.0, max_poll_interval=1, sweep_interval=1, visibility_timeout=3600)
    worker.use_app(setup.app)
    log = tmp_path / "worker.log"
    first = WorkerProcess(setup.env, log)
    try:
        batch = batch_create_sync("test", [("a", [ModelRequest.user_text_prompt("x")])], poll_interval=0.5)
        store = runtime_for(setup.app).store
        wait_for(lambda: store.part(batch.id, 0).polls >= 1, "a first poll", timeout=30, log=first)
        first.kill()  # its poll, waiting for its countdown, dies with it
        second = WorkerProcess(setup.env, log, extra=["-B", "-s", str(tmp_path / "beat-schedule")])
        try:
            final = batch_wait_sync(batch)
            assert final.status is BatchStatus.COMPLETED
            assert "Task batchline.sweep[" in second.output()
            assert store.redis.hget(f"{store.prefix}test:creates", f"{batch.id}:0") == b"1"
        finally:
            second.stop()
    finally:
        worker._current = None
        first.stop()
        setup.cleanup()

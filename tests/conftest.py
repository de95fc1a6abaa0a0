"""Shared fixtures: the embedded default, a real Redis, and a real `celery worker` subprocess.

The tests marked `redis` take the Redis at `redis://127.0.0.1:6379/0` (database 0; test_observability also puts a
broker on database 1 of the same server). Set `BATCHLINE_TEST_REDIS_URL` to take another, e.g.
`BATCHLINE_TEST_REDIS_URL=redis://127.0.0.1:6379/9 uv run pytest`. Others may run tests on the same database at the
same time, so nothing here flushes it: every real setup draws a token, and every key it makes starts with
`bltest-<token>` (batchline's store through `key_prefix`, Celery's broker and result backend through
`celery_key_prefix`, their `global_keyprefix`). A setup deletes its keys in teardown, and the session ends with a check
that no key of any of its tokens is left (`check_no_suite_key_is_left`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from batchline import runtime, worker
from batchline.config import Settings

from .rabbitmq_helpers import RABBITMQ_URL, Vhost
from .rabbitmq_helpers import reachable as rabbitmq_reachable
from .redis_cluster import redis_cluster
from .waiting import stop_group, wait_for

pytest_plugins = ["batchline.emulator.pytest_plugin"]

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "tests" / "fixtures" / "recorded"
REDIS_URL = os.environ.get("BATCHLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


# -- the embedded default ---------------------------------------------------------------------------------------------
@pytest.fixture
def embedded() -> Iterator[Settings]:
    """The embedded default (in-process broker, worker and Redis), with settings a test may replace."""
    assert worker.app.conf.batchline_settings.embedded, "tests expect no BATCHLINE_BROKER_URL in the environment"
    original = worker.app.conf.batchline_settings
    yield original
    set_embedded_settings(original)


def set_embedded_settings(settings: Settings) -> None:
    worker.app.conf.batchline_settings = settings
    runtime._runtimes.pop(id(worker.app), None)


@pytest.fixture
def embedded_store(embedded: Settings) -> runtime.Store:
    return runtime.runtime_for(worker.app).store


# -- a real Redis -----------------------------------------------------------------------------------------------------
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that takes the real Redis (and so any real worker, which needs it) is marked `redis`, marked by
    hand or not: `pytest -m "not redis"` is then the quick part, without real workers."""
    for item in items:
        if {"redis_url", "redis_cluster_url"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.redis)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real Redis. Under CI a missing Redis fails the tests that need it; elsewhere they are skipped."""
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as error:
        message = f"these tests need a real Redis at {REDIS_URL} (set BATCHLINE_TEST_REDIS_URL): {error}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 3-master Redis Cluster of this session (see `redis_cluster`), as a `redis+cluster://` URL; stopped at its
    end, its keys with it. Under CI a missing redis-server fails the tests that need it; elsewhere they are skipped."""
    try:
        cluster = redis_cluster(tmp_path_factory.mktemp("redis-cluster"))
        url = cluster.__enter__()
    except RuntimeError as error:
        if os.environ.get("CI"):
            pytest.fail(str(error))
        pytest.skip(str(error))
    try:
        yield url
    finally:
        cluster.__exit__(None, None, None)


@dataclass
class RealSetup:
    """A Redis-backed configuration with its own key prefix and queue, so test runs never see each other."""

    settings: Settings
    env: dict[str, str]
    app: Celery
    client: redis.Redis

    token: str

    @property
    def pattern(self) -> str:
        return f"bltest-{self.token}*"

    def databases(self) -> list[str]:
        """The Redis URLs this setup writes to: the store, the broker and the result backend."""
        urls = (self.settings.store_url, self.settings.broker_url, self.settings.result_backend)
        return sorted({url for url in urls if url and url.startswith(("redis://", "rediss://"))})

    def leftover_keys(self) -> list[bytes]:
        return [key for url in self.databases() for key in _keys(redis.Redis.from_url(url), self.pattern)]

    def cleanup(self) -> None:
        """Delete every key of this setup (its store, queues, bindings and task results), and no other."""
        for url in self.databases():
            client = redis.Redis.from_url(url)
            keys = _keys(client, self.pattern)
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])


def _keys(client: redis.Redis, pattern: str) -> list[bytes]:
    try:
        return list(client.scan_iter(match=pattern, count=1000))
    except redis.ConnectionError:  # a Redis server a test started and stopped: its keys went with it
        return []


_made: list[RealSetup] = []
"""Every real setup of this session, for the check at its end."""


def make_real_setup(
    redis_url: str, broker_url: str | None = None, store_url: str | None = None, **overrides: object
) -> RealSetup:
    """A setup whose broker is `broker_url` (a RabbitMQ vhost, see `broker`) or, by default, the Redis at `redis_url`,
    and whose store is `store_url` (e.g. a Redis Cluster) or that same Redis."""
    token = uuid.uuid4().hex[:10]
    values: dict[str, str] = {
        "BATCHLINE_BROKER_URL": broker_url or redis_url,
        "BATCHLINE_REDIS_URL": store_url or redis_url,
        "BATCHLINE_KEY_PREFIX": f"bltest-{token}:",
        "BATCHLINE_CELERY_KEY_PREFIX": f"bltest-{token}-celery:",
        "BATCHLINE_QUEUE": f"bltest-{token}",
        **{f"BATCHLINE_{k.upper()}": str(v) for k, v in overrides.items()},
    }
    settings = Settings.load({}, values)
    app = Celery(f"bltest-{token}", set_as_current=False)
    worker.configure(app, settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHLINE_")}
    env.update(values)
    setup = RealSetup(settings, env, app, redis.Redis.from_url(redis_url), token)
    _made.append(setup)
    return setup


@pytest.fixture(scope="session", autouse=True)
def check_no_suite_key_is_left() -> Iterator[None]:
    """At the session's end, no key of any real setup is left in Redis: each setup's teardown deleted its own.

    A key found here is deleted too, and the session errors with its names, so a teardown that forgets fails the run.
    """
    yield
    left = [key for setup in _made for key in setup.leftover_keys()]
    for setup in _made:
        setup.cleanup()
    assert not left, f"the tests left {len(left)} Redis keys behind, e.g. {sorted(left)[:10]}"


# -- the brokers ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def rabbitmq_vhost() -> Iterator[Vhost]:
    """A vhost of this session's own on the machine's RabbitMQ, deleted with everything in it at the session's end."""
    why = rabbitmq_reachable()
    if why is not None:
        message = f"these tests need a real RabbitMQ at {RABBITMQ_URL} (set BATCHLINE_TEST_RABBITMQ_URL): {why}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    vhost = Vhost()
    yield vhost
    vhost.delete()
    assert not vhost.exists(), f"the RabbitMQ vhost {vhost.name} is left behind"


BROKERS = ["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)]


@pytest.fixture(scope="session", params=BROKERS)
def broker(request: pytest.FixtureRequest, redis_url: str) -> str:
    """The broker a real-worker test runs on: each such test runs on the Redis (as the store is) and on RabbitMQ
    (this session's vhost). A test takes one of them with `@pytest.mark.parametrize("broker", [...], indirect=True)`."""
    if request.param == "rabbitmq":
        return str(request.getfixturevalue("rabbitmq_vhost").url)
    return redis_url


@pytest.fixture(scope="session")
def real_setup(redis_url: str) -> Iterator[RealSetup]:
    setup = make_real_setup(redis_url)
    yield setup
    setup.cleanup()


@pytest.fixture(scope="session")
def broker_setup(redis_url: str, broker: str) -> Iterator[RealSetup]:
    """`real_setup` on each broker in turn (see `broker`)."""
    setup = make_real_setup(redis_url, broker)
    yield setup
    setup.cleanup()


# -- a real worker ----------------------------------------------------------------------------------------------------
class WorkerProcess:
    """`celery -A batchline.worker worker` in a subprocess, as a user starts it."""

    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int = 2, extra: Sequence[str] = ()) -> None:
        self.log_path = log_path
        self.log = log_path.open("ab")
        self.start = log_path.stat().st_size
        command = [sys.executable, "-m", "celery", "-A", "batchline.worker", "worker", "-E", "--loglevel=INFO"]
        command += [f"--concurrency={concurrency}", f"--hostname=bltest-{uuid.uuid4().hex[:6]}@%h", *extra]
        self.process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.process.returncode}:\n{self.output()[-3000:]}")
            return " ready." in self.output()[self.start :]

        try:
            wait_for(ready, "the celery worker to be ready", timeout=timeout, interval=0.1, log=self)
        except BaseException:
            self.kill()  # a worker that never became ready must not outlive the test that started it
            raise

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as an OOM kill or a lost node would; return once none
        of them runs."""
        stop_group(self.process, lambda: os.killpg(self.process.pid, signal.SIGKILL))
        self.log.close()

    def stop(self) -> None:
        """A warm shutdown (SIGTERM to the main process), then wait until no process of the worker runs: its pool
        processes and its embedded beat too, which can outlive the main process and still publish."""
        stop_group(self.process, self.process.terminate)
        self.log.close()


@pytest.fixture(scope="session")
def real_worker(real_setup: RealSetup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    process = WorkerProcess(real_setup.env, tmp_path_factory.mktemp("worker") / "worker.log")
    yield process
    process.stop()


@pytest.fixture(scope="session")
def broker_worker(broker_setup: RealSetup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    process = WorkerProcess(broker_setup.env, tmp_path_factory.mktemp("worker") / "worker.log")
    yield process
    process.stop()


@pytest.fixture
def via_real_worker(real_setup: RealSetup, real_worker: WorkerProcess) -> Iterator[RealSetup]:
    """This process's API sends through the real worker's broker and reads its Redis store."""
    worker.use_app(real_setup.app)
    try:
        yield real_setup
    finally:
        worker._current = None


def with_settings(settings: Settings, **changes: object) -> Settings:
    return replace(settings, **changes)  # type: ignore[arg-type]


_SESSION_ENV = dict(os.environ)
"""The environment as the session began: a session fixture first asked for inside a test that patches the
environment (the Django and Flask examples set CELERY_BROKER_URL) must not keep that test's values."""


@pytest.fixture(scope="session")
def clean_env() -> dict[str, str]:
    """The environment without any batchline, Celery or example-app setting: a subprocess runs on the embedded
    default."""
    app_settings = ("BATCHLINE_", "CELERY_", "DJANGO_", "FLASK_")
    return {k: v for k, v in _SESSION_ENV.items() if not k.startswith(app_settings)}


def announced(client: redis.Redis, job_key: str) -> list[str]:
    """The custom_ids a job's arrival stream announced, in order (an entry per stored chunk, a field per result)."""
    return [cid.decode() for _, fields in client.xrange(f"{job_key}:stream") for cid in fields]


def store_job(into: runtime.Runtime, model: str, requests: Sequence[Any], created_at: float | None = None) -> str:
    """A job written into the store as `batch_create` writes it (defaults for every option), with no submit sent."""
    from batchline.jobs import plan_parts
    from batchline.records import JobRecord

    provider = into.provider(model)
    encoded = provider.encode_many(requests)
    job_id = f"batch_{uuid.uuid4().hex}"
    record = JobRecord(
        model=model,
        total=len(encoded),
        created_at=time.time() if created_at is None else created_at,
        poll_interval=1,
        chunk_size=500,
        max_resubmissions=0,
    )
    rows = [(e.custom_id, e.body, None) for e in encoded]
    into.store.create_job(job_id, record, rows, plan_parts(provider, encoded))
    return job_id

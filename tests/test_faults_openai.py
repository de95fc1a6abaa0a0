"""The fault suite against the emulator's OpenAI Batch API: kill a real worker during submit, poll and fetch of an
`openai:` job, start another, and read the emulator's own statistics: each part created once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic_ai import ModelRequest

from batchline import BatchStatus, batch_create_sync, batch_status_sync, worker
from batchline.emulator import Emulator, HttpFault
from batchline.providers.openai import OpenAIProvider
from batchline.runtime import runtime_for

from .conftest import RealSetup, WorkerProcess, announced, make_real_setup
from .openai_anthropic_helpers import provider_env
from .waiting import wait_for

pytestmark = pytest.mark.redis

MODEL = "openai:gpt-4o-mini"


class Workers:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.current = WorkerProcess(env, log)

    def restart(self) -> None:
        self.current.kill()
        self.current = WorkerProcess(self.env, self.log)


@pytest.fixture
def openai_workers(redis_url: str, emulator: Emulator, tmp_path: Path) -> Iterator[tuple[RealSetup, Workers]]:
    setup = make_real_setup(redis_url, visibility_timeout=6, max_poll_interval=1, claim_timeout=3)
    worker.use_app(setup.app)
    workers = Workers({**setup.env, **provider_env(emulator)}, tmp_path / "worker.log")
    yield setup, workers
    worker._current = None
    workers.current.stop()
    setup.cleanup()


def requests(count: int) -> list[tuple[str, list[ModelRequest]]]:
    return [(f"r{i:04d}", [ModelRequest.user_text_prompt(f"question {i}")]) for i in range(count)]


def finish(setup: RealSetup, emulator: Emulator, job_id: str, total: int, parts: int) -> None:
    wait_for(lambda: batch_status_sync(job_id).is_complete, "the job to complete", timeout=90)
    batch = batch_status_sync(job_id)
    assert batch.status is BatchStatus.COMPLETED
    assert emulator.stats()["openai"]["batches_created"] == parts  # each part paid for once
    assert (batch.completed_count, batch.failed_count) == (total, 0)
    store = runtime_for(setup.app).store
    assert store.redis.hlen(f"{store.prefix}job:{job_id}:res") == total
    arrivals = announced(store.redis, f"{store.prefix}job:{job_id}")
    assert len(arrivals) == len(set(arrivals)) == total  # announced once each


def test_killed_while_creating_openai_batches(
    openai_workers: tuple[RealSetup, Workers], emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup, workers = openai_workers
    monkeypatch.setattr(OpenAIProvider, "max_requests", 10)  # planned in this process: two parts
    emulator.add_fault(HttpFault(kind="slow", delay=3.0, method="POST", path=r"/v1/batches$", times=2))
    job = batch_create_sync(MODEL, requests(20), submit_wait=0)
    calls = emulator.stats
    for seen in (1, 2):
        wait_for(lambda s=seen: calls()["calls"].get("POST /v1/batches", 0) >= s, f"create call {seen}")
        workers.restart()  # killed while the create call is under way
    finish(setup, emulator, job.id, 20, parts=2)


def test_killed_while_polling_and_fetching_an_openai_batch(
    openai_workers: tuple[RealSetup, Workers], emulator: Emulator
) -> None:
    setup, workers = openai_workers
    emulator.configure(stage_seconds=1.5)
    emulator.add_fault(HttpFault(kind="slow", delay=3.0, method="GET", path=r"/content$", times=1))
    job = batch_create_sync(MODEL, requests(30), poll_interval=0.3, submit_wait=0)
    wait_for(lambda: emulator.stats()["calls"].get("GET /v1/batches/{batch_id}", 0) >= 2, "two polls")
    workers.restart()  # killed between polls
    wait_for(lambda: emulator.stats()["calls"].get("GET /v1/files/{file_id}/content", 0) >= 1, "the download")
    workers.restart()  # killed during the (slow) download
    finish(setup, emulator, job.id, 30, parts=1)

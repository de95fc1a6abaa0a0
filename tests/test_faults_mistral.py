"""Faults on the emulator's Mistral batch API: real workers killed during create, poll and fetch of a `mistral:` job;
a create answer that cannot be read (the job is found by its metadata, or the part ends unpaid twice); hostile result
lines and ids. In every case each part is created at Mistral once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic_ai import ModelRequest

from batchline import BatchStatus, batch_create_sync, batch_results_sync, batch_status_sync, pipeline, worker
from batchline.config import Settings
from batchline.emulator import Emulator, HttpFault
from batchline.providers.mistral import MistralProvider
from batchline.runtime import runtime_for
from batchline.types import Batch, BatchResult

from .conftest import RealSetup, WorkerProcess, announced, make_real_setup, set_embedded_settings, with_settings
from .openai_anthropic_helpers import fresh_runtime
from .test_mistral_adapter import MODEL, mistral_env
from .waiting import wait_for

CREATE = r"^/mistral/v1/batch/jobs$"
ATTEMPTS = 2


def requests(count: int) -> list[tuple[str, list[ModelRequest]]]:
    return [(f"q{i}", [ModelRequest.user_text_prompt(f"question {i}")]) for i in range(count)]


def jobs_created(emulator: Emulator) -> int:
    return int(emulator.stats()["mistral"]["batches_created"])


# -- real workers killed ----------------------------------------------------------------------------------------------
class Workers:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.current = WorkerProcess(env, log)

    def restart(self) -> None:
        self.current.kill()
        self.current = WorkerProcess(self.env, self.log)


@pytest.fixture
def mistral_workers(redis_url: str, emulator: Emulator, tmp_path: Path) -> Iterator[tuple[RealSetup, Workers]]:
    setup = make_real_setup(redis_url, visibility_timeout=6, max_poll_interval=1, claim_timeout=3)
    worker.use_app(setup.app)
    workers = Workers({**setup.env, **mistral_env(emulator)}, tmp_path / "worker.log")
    yield setup, workers
    worker._current = None
    workers.current.stop()
    setup.cleanup()


def finish(setup: RealSetup, emulator: Emulator, job_id: str, total: int, parts: int) -> None:
    wait_for(lambda: batch_status_sync(job_id).is_complete, "the job to complete", timeout=90)
    batch = batch_status_sync(job_id)
    assert batch.status is BatchStatus.COMPLETED
    assert jobs_created(emulator) == parts  # each part paid for once
    assert (batch.completed_count, batch.failed_count) == (total, 0)
    store = runtime_for(setup.app).store
    assert store.redis.hlen(f"{store.prefix}job:{job_id}:res") == total
    arrivals = announced(store.redis, f"{store.prefix}job:{job_id}")
    assert len(arrivals) == len(set(arrivals)) == total  # announced once each


@pytest.mark.redis
def test_killed_while_creating_mistral_jobs(
    mistral_workers: tuple[RealSetup, Workers], emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup, workers = mistral_workers
    monkeypatch.setattr(MistralProvider, "max_requests", 10)  # planned in this process: two parts
    emulator.add_fault(HttpFault(kind="slow", delay=3.0, method="POST", path=CREATE, times=2))
    job = batch_create_sync(MODEL, requests(20), submit_wait=0)
    calls = emulator.stats
    for seen in (1, 2):
        wait_for(lambda s=seen: calls()["calls"].get("POST /mistral/v1/batch/jobs", 0) >= s, f"create call {seen}")
        workers.restart()  # killed while the create call is under way: the job is found by its metadata
    finish(setup, emulator, job.id, 20, parts=2)


@pytest.mark.redis
def test_killed_while_polling_and_fetching_a_mistral_job(
    mistral_workers: tuple[RealSetup, Workers], emulator: Emulator
) -> None:
    setup, workers = mistral_workers
    emulator.configure(stage_seconds=1.5)
    emulator.add_fault(HttpFault(kind="slow", delay=3.0, method="GET", path=r"/content$", times=1))
    job = batch_create_sync(MODEL, requests(30), poll_interval=0.3, submit_wait=0)
    wait_for(lambda: emulator.stats()["calls"].get("GET /mistral/v1/batch/jobs/{job_id}", 0) >= 2, "two polls")
    workers.restart()  # killed between polls
    wait_for(lambda: emulator.stats()["calls"].get("GET /mistral/v1/files/{file_id}/content", 0) >= 1, "download")
    workers.restart()  # killed during the (slow) download
    finish(setup, emulator, job.id, 30, parts=1)


# -- a hostile or broken provider, on the embedded default ------------------------------------------------------------
@pytest.fixture
def hostile(
    emulator: Emulator, embedded: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Emulator]]:
    for name, value in mistral_env(emulator).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(pipeline.base, "POISON_ATTEMPTS", ATTEMPTS)

    def configure(**settings: object) -> Emulator:
        set_embedded_settings(with_settings(embedded, **settings))
        return emulator

    fresh_runtime()
    yield configure
    fresh_runtime()


def run(count: int = 10) -> tuple[Batch, list[BatchResult]]:
    job = batch_create_sync(MODEL, requests(count), poll_interval=0.1, max_resubmissions=0)
    state = wait_for(lambda: (s := batch_status_sync(job.id)).is_complete and s, f"job {job.id} to end", timeout=60)
    return state, batch_results_sync(job.id)


def accounted(batch: Batch, results: list[BatchResult], total: int = 10) -> None:
    assert batch.request_count == total and batch.completed_count + batch.failed_count == total
    assert sorted(r.custom_id for r in results) == sorted(f"q{i}" for i in range(total))
    assert runtime_for(worker.app).store.result_count(batch.id) == total


def test_an_unreadable_create_answer_is_found_not_created_again(hostile: Callable[..., Emulator]) -> None:
    emulator = hostile(claim_timeout=0.5)
    emulator.add_fault(HttpFault(kind="replace", method="POST", path=CREATE, body=["created?"], times=1))
    batch, results = run()
    assert jobs_created(emulator) == 1  # the job the unreadable answer hid was found by its metadata
    assert batch.status is BatchStatus.COMPLETED and (batch.completed_count, batch.failed_count) == (10, 0)
    accounted(batch, results)
    assert emulator.stats()["calls"]["GET /mistral/v1/batch/jobs"] >= 1


def test_a_listing_that_cannot_be_read_ends_the_part_without_paying_twice(hostile: Callable[..., Emulator]) -> None:
    emulator = hostile(claim_timeout=0.5)
    emulator.add_fault(HttpFault(kind="replace", method="POST", path=CREATE, body=["created?"], times=1))
    emulator.add_fault(HttpFault(kind="replace", method="GET", path=CREATE, body="not a list"))
    batch, results = run()
    assert jobs_created(emulator) == 1
    assert batch.status is BatchStatus.FAILED
    accounted(batch, results)
    (message,) = {r.error.message for r in results if r.error is not None}
    assert "not created again" in message and "mistral" in message


def test_unusable_result_lines_are_anomalies_never_results(hostile: Callable[..., Emulator]) -> None:
    emulator = hostile()

    def line(custom_id: str) -> str:
        return f'{{"custom_id":"{custom_id}","response":{{"status_code":500,"body":{{"message":"injected"}}}}}}'

    bad = ["not JSON", line("q1").replace('"q1"', "null"), line("zz-not-in-this-part"), line("q3"), "[1, 2]"]
    emulator.add_fault(HttpFault(kind="inject_lines", method="GET", path=r"/content$", lines=bad))
    batch, results = run()
    assert batch.status is BatchStatus.COMPLETED and (batch.completed_count, batch.failed_count) == (10, 0)
    accounted(batch, results)
    assert batch_status_sync(batch.id).anomaly_count == 5


def test_a_file_id_that_would_change_the_path_is_not_followed(hostile: Callable[..., Emulator]) -> None:
    emulator = hostile()
    emulator.add_fault(
        HttpFault(kind="patch", method="GET", path=r"/batch/jobs/[^/]+$", body={"output_file": "../../v1/batch/jobs"})
    )
    batch, results = run()
    assert batch.status is BatchStatus.FAILED
    accounted(batch, results)
    (message,) = {r.error.message for r in results if r.error is not None}
    assert "output file id '../../v1/batch/jobs', which is not a plain id; it is not followed" in message
    assert jobs_created(emulator) == 1

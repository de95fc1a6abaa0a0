"""A real `celery worker` process on the real Redis runs jobs that other processes create and read."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic_ai import ModelRequest

from batchline import BatchStatus, batch_create_sync, batch_results_sync, batch_status_sync, batch_wait_sync

from .conftest import ROOT, RealSetup, WorkerProcess, make_real_setup

pytestmark = pytest.mark.redis


def run_python(code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_a_job_runs_on_the_worker_and_is_read_elsewhere_by_its_saved_id(
    via_real_worker: RealSetup, real_worker: WorkerProcess
) -> None:
    requests = [(f"doc-{i}", [ModelRequest.user_text_prompt(f"Summarise document {i}")]) for i in range(25)]
    batch = batch_create_sync("test", requests, poll_interval=0.5)
    saved_id = batch.id  # all an app keeps, e.g. in its database

    # Another process, with nothing but the id and the same configuration, reads the job.
    code = f"""
import json
import re
from batchline import batch_status_sync, batch_results_sync
batch = batch_status_sync({saved_id!r})
results = batch_results_sync({saved_id!r})
print(json.dumps({{"status": batch.status.name, "done": batch.completed_count,
                   "texts": [r.response.text for r in results]}}))
"""
    seen = json.loads(run_python(code, via_real_worker.env))
    assert seen["status"] == "COMPLETED" and seen["done"] == 25
    assert seen["texts"] == [f"Mock response for doc-{i}" for i in range(25)]

    log = real_worker.output()
    for step in ("batchline.submit", "batchline.fetch", "batchline.deliver"):  # it ended at once: no poll needed
        assert f"Task {step}[" in log, step
    assert "Summarise document" not in log  # the prompt never reaches the broker or the worker's log


def test_a_slow_provider_batch_is_polled_across_processes(redis_url: str, tmp_path: Path) -> None:
    """A worker with a test provider that takes 2 s: the job is created in one process, polled by the worker's
    processes, and waited for in a third."""
    setup = make_real_setup(redis_url, test_delay=2.0)
    process = WorkerProcess(setup.env, tmp_path / "worker.log")
    try:
        created = run_python(
            "from pydantic_ai import ModelRequest\n"
            "from batchline import batch_create_sync\n"
            "b = batch_create_sync('test', [('a', [ModelRequest.user_text_prompt('x')])], poll_interval=0.5)\n"
            "print(b.status.name, b.id)",
            setup.env,
        ).split()
        assert created[0] == "IN_PROGRESS"
        final = run_python(
            f"from batchline import batch_wait_sync\nprint(batch_wait_sync({created[1]!r}).status.name)", setup.env
        )
        assert final.strip() == "COMPLETED"
        # Polled more than once, each time by a tick of the due set: no poll waits as a message.
        assert process.output().count("Task batchline.poll_due[") >= 2
        assert "Task batchline.poll[" not in process.output()
    finally:
        process.stop()
        setup.cleanup()


def test_the_in_process_api_sees_the_worker_results(via_real_worker: RealSetup) -> None:
    batch = batch_create_sync("test", [("x", [ModelRequest.user_text_prompt("hello")])], poll_interval=0.5)
    final = batch_wait_sync(batch)
    assert final.status is BatchStatus.COMPLETED
    assert batch_status_sync(batch.id) == final
    assert [r.response.text for r in batch_results_sync(final) if r.response] == ["Mock response for x"]
    keys = {k.decode() for k in via_real_worker.client.scan_iter(match=f"{via_real_worker.settings.key_prefix}*")}
    assert f"{via_real_worker.settings.key_prefix}job:{batch.id}:res" in keys
    assert all(via_real_worker.client.ttl(k) > 0 for k in keys if ":job:" in k)


def test_every_key_a_worker_run_makes_carries_the_setup_token_and_cleanup_removes_them(
    redis_url: str, tmp_path: Path
) -> None:
    """Celery's broker and result backend write under `celery_key_prefix`, so a shared Redis database keeps no
    `celery-task-meta-*`, `_kombu.binding.*` or queue key of this run once its setup is cleaned up."""
    setup = make_real_setup(redis_url)
    process = WorkerProcess(setup.env, tmp_path / "worker.log")
    try:
        batch = run_python(
            "from pydantic_ai import ModelRequest\n"
            "from batchline import batch_create_sync, batch_wait_sync\n"
            "b = batch_create_sync('test', [('a', [ModelRequest.user_text_prompt('x')])], poll_interval=0.5)\n"
            "print(batch_wait_sync(b).id)",
            setup.env,
        ).strip()
    finally:
        process.stop()
    task_ids = re.findall(r"Task batchline\.\w+\[([0-9a-f-]{36})\] succeeded", process.output())
    assert task_ids, process.output()[-3000:]
    prefix = setup.settings.celery_key_prefix
    keys = {key.decode() for key in setup.leftover_keys()}
    assert {f"{prefix}celery-task-meta-{task_id}" for task_id in task_ids} <= keys
    assert f"{prefix}_kombu.binding.{setup.settings.queue}" in keys
    assert f"{setup.settings.key_prefix}job:{batch}" in keys
    assert not any(setup.client.exists(f"celery-task-meta-{task_id}") for task_id in task_ids)  # none unprefixed

    setup.cleanup()
    assert setup.leftover_keys() == []

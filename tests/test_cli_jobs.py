"""The job commands, run as a user runs them (in subprocesses) against a real Redis and a real worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from .conftest import ROOT, RealSetup, WorkerProcess, make_real_setup

pytestmark = pytest.mark.redis


def batchline(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "batchline", *args]
    return subprocess.run(
        command, capture_output=True, text=True, env={**env, "COLUMNS": "200"}, cwd=ROOT, timeout=timeout
    )


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def test_submit_wait_status_results_and_jobs(real_setup: RealSetup, real_worker: WorkerProcess, tmp_path: Path) -> None:
    rows = [{"custom_id": f"line-{i}", "prompt": f"Question {i}"} for i in range(12)]
    submitted = batchline(
        "submit", str(write_jsonl(tmp_path / "in.jsonl", rows)), "--model", "test", env=real_setup.env
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert job_id.startswith("batch_") and len(submitted.stdout.splitlines()) == 1  # the id alone, for scripts

    waited = batchline("wait", job_id, env=real_setup.env)
    assert waited.returncode == 0, waited.stderr
    assert "12/12" in waited.stdout and "COMPLETED, 12 succeeded, 0 failed" in waited.stdout
    assert "output tokens, cost unknown" in waited.stdout  # the test model has no price: never a made-up 0

    status = batchline("status", job_id, env=real_setup.env)
    assert status.returncode == 0 and "COMPLETED" in status.stdout and "batch_test_" in status.stdout
    assert "output tokens, cost unknown" in status.stdout

    out = tmp_path / "out.jsonl"
    exported = batchline("results", job_id, "-o", str(out), env=real_setup.env)
    assert exported.returncode == 0 and "12 results written" in exported.stdout
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [line["custom_id"] for line in lines] == [f"line-{i}" for i in range(12)]
    assert lines[3]["status"] == "succeeded" and lines[3]["error"] is None
    assert lines[3]["response"]["parts"][0]["content"] == "Mock response for line-3"

    listed = batchline("jobs", env=real_setup.env)
    assert listed.returncode == 0 and job_id in listed.stdout
    assert "cost" in listed.stdout and "unknown" in next(line for line in listed.stdout.splitlines() if job_id in line)


def test_cancel_stops_a_running_job(redis_url: str, tmp_path: Path) -> None:
    setup = make_real_setup(redis_url, test_delay=60.0)
    process = WorkerProcess(setup.env, tmp_path / "worker.log")
    try:
        rows = [{"custom_id": "slow", "prompt": "Take your time"}]
        job_id = batchline("submit", str(write_jsonl(tmp_path / "in.jsonl", rows)), "--model", "test", env=setup.env)
        job_id_text = job_id.stdout.strip()
        cancelled = batchline("cancel", job_id_text, env=setup.env)
        assert cancelled.returncode == 0 and "CANCELL" in cancelled.stdout
        waited = batchline("wait", job_id_text, "--timeout", "60", env=setup.env)
        assert waited.returncode == 1 and "CANCELLED" in waited.stdout
    finally:
        process.stop()
        setup.cleanup()


def test_bad_input_is_one_clear_line(real_setup: RealSetup, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"custom_id": "a", "prompt": "fine"}\n{"custom_id": "b", "prompt": \n')
    result = batchline("submit", str(bad), "--model", "test", env=real_setup.env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "line 2" in line and "not JSON" in line

    unknown = batchline("status", "batch_doesnotexist", env=real_setup.env)
    assert unknown.returncode == 1 and "batch_doesnotexist" in unknown.stderr and "Traceback" not in unknown.stderr


def test_job_commands_explain_they_need_a_shared_store(clean_env: dict[str, str]) -> None:
    result = batchline("jobs", env=clean_env)
    assert result.returncode == 1
    assert "BATCHLINE_BROKER_URL" in result.stderr and "Traceback" not in result.stderr

"""What a new user met with the `batchline` command (issue 15), run as they run it: in subprocesses."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from .conftest import ROOT, RealSetup, WorkerProcess, make_real_setup
from .example_helpers import wait_for
from .waiting import stop_group

COMMANDS = ("demo", "worker", "submit", "status", "cancel", "wait", "results", "jobs", "emulator")


def batchline(*args: str, env: dict[str, str], columns: int = 200) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "batchline", *args]
    env = {**env, "COLUMNS": str(columns)}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def prompts(count: int) -> list[dict[str, object]]:
    return [{"custom_id": f"q-{i}", "prompt": f"Question {i}"} for i in range(count)]


def options_without_help(help_text: str) -> list[str]:
    """The options an argparse --help lists with no text beside or under them."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("options:"))
    bare = []
    for i, line in enumerate(lines[start + 1 :], start + 1):
        if not line.startswith("  -"):
            continue
        text = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        below = lines[i + 1] if i + 1 < len(lines) else ""
        if len(text) == 1 and not below.startswith(" " * 10):
            bare.append(text[0])
    return bare


# -- no Redis needed ------------------------------------------------------------------------------------------------
def test_top_level_help_says_what_batchline_is_and_lists_the_commands(clean_env: dict[str, str]) -> None:
    result = batchline("--help", env=clean_env, columns=120)
    assert result.returncode == 0
    description = result.stdout.split("\n\n")[1]
    assert "batch APIs" in description and "Celery" in description and "Redis" in description
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s+\S", result.stdout, re.MULTILINE), command


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "worker"])
def test_every_option_has_help(clean_env: dict[str, str], command: str) -> None:
    result = batchline(command, "--help", env=clean_env, columns=120)
    assert result.returncode == 0, result.stderr
    assert options_without_help(result.stdout) == []


def test_submit_help_explains_the_poll_interval(clean_env: dict[str, str]) -> None:
    result = batchline("submit", "--help", env=clean_env, columns=120)
    assert "--poll-interval SECONDS" in result.stdout
    assert "between the workers' checks" in result.stdout


def test_worker_help_is_celerys_worker_help(clean_env: dict[str, str]) -> None:
    result = batchline("worker", "--help", env=clean_env)
    assert result.returncode == 0, result.stderr
    assert "Start worker instance" in result.stdout and "--concurrency" in result.stdout


@pytest.mark.parametrize("value", ["0", "-3", "ten", "2.5"])
def test_jobs_limit_must_be_a_positive_whole_number(clean_env: dict[str, str], value: str) -> None:
    result = batchline("jobs", "--limit", value, env=clean_env)
    assert result.returncode == 2
    assert "argument --limit" in result.stderr and "whole number of 1 or more" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_poll_interval_must_be_above_zero(clean_env: dict[str, str], tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", prompts(1))
    result = batchline("submit", str(path), "--model", "test", "--poll-interval", "0", env=clean_env)
    assert result.returncode == 2
    assert "argument --poll-interval" in result.stderr and "above 0" in result.stderr


def test_a_broker_without_a_password_is_shown_without_a_mask(clean_env: dict[str, str]) -> None:
    show = "from batchline.worker import app; print(app.connection().as_uri())"

    def shown(url: str) -> str:
        env = {**clean_env, "BATCHLINE_BROKER_URL": url}
        result = subprocess.run([sys.executable, "-c", show], capture_output=True, text=True, env=env, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert shown("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert shown("redis://:s3cret@127.0.0.1:6379/0") == "redis://:**@127.0.0.1:6379/0"
    assert shown("redis://me:s3cret@127.0.0.1:6379/0") == "redis://me:**@127.0.0.1:6379/0"


# -- against the real Redis -----------------------------------------------------------------------------------------
def job_count(setup: RealSetup) -> int:
    return int(setup.client.zcard(f"{setup.settings.key_prefix}jobs"))


@pytest.fixture
def fresh_setup(redis_url: str) -> Iterator[RealSetup]:
    setup = make_real_setup(redis_url)
    yield setup
    setup.cleanup()


@pytest.mark.redis
def test_worker_takes_celerys_options(redis_url: str, tmp_path: Path) -> None:
    setup = make_real_setup(redis_url)
    queue = f"bltest-q-{uuid.uuid4().hex[:8]}"
    log_path = tmp_path / "worker.log"
    args = ["worker", "--concurrency", "1", "-l", "INFO", "-Q", queue, "--hostname", f"{queue}@%h"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "batchline", *args],
            env=setup.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(lambda: " ready." in log_path.read_text() or process.poll() is not None, "the worker's start")
            output = log_path.read_text()
            assert process.poll() is None, output
            assert "concurrency: 1 (prefork)" in output
            assert f".> {queue}" in output
            assert "INFO/MainProcess]" in output  # -l INFO reached celery (its default is WARNING)
            # The banner shows the broker as configured: no mask for a password it does not have.
            assert "transport:   redis://127.0.0.1:6379/0" in output and ":**@" not in output
        finally:
            stop_group(process, process.terminate)  # its pool processes too, before the keys go
            setup.cleanup()
            setup.client.delete(f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    assert process.returncode == 0  # a warm shutdown


@pytest.mark.redis
def test_a_missing_input_file_is_one_line_naming_it(fresh_setup: RealSetup, tmp_path: Path) -> None:
    missing = tmp_path / "nofile.jsonl"
    result = batchline("submit", str(missing), "--model", "test", env=fresh_setup.env)
    assert result.returncode == 1
    assert result.stderr.strip() == f"batchline submit: {missing}: no such file"


def openai_raw(model: str | None, count: int = 2) -> list[dict[str, object]]:
    body: dict[str, object] = {"messages": [{"role": "user", "content": "Hi"}], **({"model": model} if model else {})}
    return [
        {"custom_id": f"r-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body} for i in range(count)
    ]


@pytest.mark.redis
def test_a_raw_file_naming_another_model_is_refused(fresh_setup: RealSetup, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "raw.jsonl", openai_raw("gpt-4o-mini"))
    result = batchline("submit", str(path), "--model", "openai:gpt-4o", env=fresh_setup.env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "openai:gpt-4o " in line and "'gpt-4o-mini'" in line
    assert job_count(fresh_setup) == 0  # nothing stored, so nothing sent


@pytest.mark.redis
def test_a_raw_body_without_a_model_takes_the_model_option(fresh_setup: RealSetup, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "raw.jsonl", openai_raw(None))
    result = batchline("submit", str(path), "--model", "openai:gpt-4o-mini", env=fresh_setup.env)
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    bodies = fresh_setup.client.hvals(f"{fresh_setup.settings.key_prefix}job:{job_id}:req")
    assert [orjson.loads(body)["model"] for body in bodies] == ["gpt-4o-mini", "gpt-4o-mini"]


@pytest.mark.redis
def test_jobs_never_cuts_a_job_id(fresh_setup: RealSetup, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", prompts(1))
    job_id = batchline("submit", str(path), "--model", "openai:gpt-4o-mini", env=fresh_setup.env).stdout.strip()
    listed = batchline("jobs", env=fresh_setup.env, columns=80)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    (row,) = [line for line in lines if "batch_" in line]
    assert job_id in row.split(), listed.stdout  # whole, on one line, with nothing glued to it
    assert "…" not in listed.stdout  # the other columns wrap rather than lose characters


@pytest.mark.redis
def test_results_into_a_closed_pipe_end_quietly(
    real_setup: RealSetup, real_worker: WorkerProcess, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", prompts(2000))  # well past a pipe's buffer
    job_id = batchline("submit", str(path), "--model", "test", env=real_setup.env).stdout.strip()
    assert batchline("wait", job_id, env=real_setup.env).returncode == 0
    # `batchline results JOB | head -1`
    reader = subprocess.Popen(
        [sys.executable, "-m", "batchline", "results", job_id],
        env=real_setup.env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert reader.stdout is not None and reader.stderr is not None
    first = orjson.loads(reader.stdout.readline())
    reader.stdout.close()
    errors = reader.stderr.read().decode()
    assert reader.wait(60) == 141, errors
    assert first["custom_id"] == "q-0"
    assert errors == ""


# -- a worker whose test batches take two minutes -------------------------------------------------------------------
@pytest.fixture(scope="module")
def slow(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RealSetup, WorkerProcess]]:
    setup = make_real_setup(redis_url, test_delay=120.0)
    process = WorkerProcess(setup.env, tmp_path_factory.mktemp("slow") / "worker.log")
    yield setup, process
    process.stop()
    setup.cleanup()


def polls(setup: RealSetup, job_id: str) -> int:
    return int(setup.client.hget(f"{setup.settings.key_prefix}job:{job_id}:part:0", "polls") or 0)


@pytest.mark.redis
def test_wait_says_when_the_next_poll_is_due(slow: tuple[RealSetup, WorkerProcess], tmp_path: Path) -> None:
    setup, process = slow
    path = write_jsonl(tmp_path / "in.jsonl", prompts(3))
    job_id = batchline("submit", str(path), "--model", "test", env=setup.env).stdout.strip()
    # The first two polls come within a second; the third after the 60 s default.
    wait_for(lambda: polls(setup, job_id) >= 2, "the second poll", log=process)
    waited = batchline("wait", job_id, "--timeout", "0.5", env=setup.env)
    assert waited.returncode == 2
    first = waited.stdout.splitlines()[0]
    assert re.fullmatch(r"next poll in (\d+) s \(poll interval 60 s; submit with --poll-interval to change\)", first), (
        first
    )
    assert 10 <= int(first.split()[3]) <= 60

    quick = batchline("submit", str(path), "--model", "test", "--poll-interval", "2", env=setup.env).stdout.strip()
    wait_for(lambda: polls(setup, quick) >= 2, "the second poll", log=process)
    waited = batchline("wait", quick, "--timeout", "0.5", env=setup.env)
    assert waited.returncode == 2 and "next poll" not in waited.stdout
    for job in (job_id, quick):
        batchline("cancel", job, env=setup.env)


@pytest.mark.redis
def test_a_cancelled_jobs_rows_count_what_its_footer_counts(
    slow: tuple[RealSetup, WorkerProcess], tmp_path: Path
) -> None:
    setup, _ = slow
    path = write_jsonl(tmp_path / "in.jsonl", prompts(17))
    job_id = batchline("submit", str(path), "--model", "test", env=setup.env).stdout.strip()
    assert batchline("cancel", job_id, env=setup.env).returncode == 0
    assert batchline("wait", job_id, "--timeout", "60", env=setup.env).returncode == 1

    status = batchline("status", job_id, env=setup.env)
    assert status.returncode == 0, status.stderr
    (row,) = [line for line in status.stdout.splitlines() if "batch_test_" in line]
    # requests, succeeded, failed, not run
    assert [cell.strip() for cell in row.split("│")[4:8]] == ["17", "0", "0", "17"], status.stdout
    assert "0 succeeded, 0 failed, 17 not run (cancelled or expired) of 17" in status.stdout

    listed = batchline("jobs", env=setup.env)
    (row,) = [line for line in listed.stdout.splitlines() if job_id in line]
    assert row.split()[2:7] == ["CANCELLED", "17", "0", "0", "17"], listed.stdout

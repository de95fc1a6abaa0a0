"""Every script in examples/batch_api runs as a user runs it and prints exactly its `.out` file.

On the embedded default (no broker: the script's own process does everything) and through a real `celery worker` on
Redis. `tests/test_openai_adapter.py` runs the same scripts on `openai:gpt-4o-mini` against the emulator.

On the embedded default a script runs as `__main__` inside the test process (a new interpreter would spend seconds
importing pydantic-ai for each); one of them also runs as a program of its own, and so does every real-worker run.
"""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from batchline.config import Settings

from .conftest import ROOT, RealSetup, WorkerProcess

EXAMPLES = ROOT / "examples" / "batch_api"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
NAMES = [script.stem for script in SCRIPTS]
PLACEHOLDERS = {"{batch_id}": r"batch_[0-9a-f]{32}"}
"""What an `.out` line may hold that differs from run to run, and the form it must have."""


def expected(script: Path) -> list[str]:
    return script.with_suffix(".out").read_text().splitlines()


def check_output(expected_lines: list[str], stdout: str) -> None:
    """The output is the expected lines, one for one, with each placeholder standing for a value of its form."""
    lines = stdout.splitlines()
    assert len(lines) == len(expected_lines), f"expected {len(expected_lines)} lines, got:\n{stdout}"
    for number, (line, wanted) in enumerate(zip(lines, expected_lines, strict=True), 1):
        pattern = re.escape(wanted)
        for placeholder, form in PLACEHOLDERS.items():
            pattern = pattern.replace(re.escape(placeholder), form)
        assert re.fullmatch(pattern, line), f"line {number}: expected {wanted!r}, got {line!r} in:\n{stdout}"


def run_example(script: Path, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def run_in_process(
    script: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> str:
    """Run the script as `python script args...` would, in this process; its stdout."""
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    capsys.readouterr()
    runpy.run_path(str(script), run_name="__main__")
    return capsys.readouterr().out


def test_every_example_has_its_expected_output_and_a_line_in_the_readme() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    assert len(SCRIPTS) >= 9
    for script in SCRIPTS:
        assert expected(script), script.name
        assert f"`{script.name}`" in readme, script.name
        assert "from batchline import" in script.read_text(), script.name


@pytest.mark.parametrize("script", SCRIPTS, ids=NAMES)
def test_example_on_the_embedded_default(
    script: Path, embedded: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BATCHLINE_EXAMPLE_MODEL", raising=False)
    check_output(expected(script), run_in_process(script, monkeypatch, capsys))


def test_an_example_runs_as_a_program_and_its_argument_names_the_model(clean_env: dict[str, str]) -> None:
    script = EXAMPLES / "quick_start.py"
    env = {**clean_env, "BATCHLINE_EXAMPLE_MODEL": "nosuchprovider:model"}
    check_output(expected(script), run_example(script, env, "test"))  # the argument wins over the variable


def test_an_example_takes_its_model_from_the_environment(
    embedded: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BATCHLINE_EXAMPLE_MODEL", "nosuchprovider:model")
    with pytest.raises(NotImplementedError, match="nosuchprovider"):
        run_in_process(EXAMPLES / "single_request.py", monkeypatch, capsys)


ON_RABBITMQ = [
    script for script in SCRIPTS if script.stem in {"quick_start", "custom_polling", "manual_cancel", "resume_by_id"}
]
"""The examples that run on RabbitMQ too (every one runs on Redis): a job, waiting polls, a cancel and a resumed job
take the broker's paths that differ; the others would add CI time, not coverage of the broker."""


@pytest.mark.redis
@pytest.mark.parametrize("broker", ["redis"], indirect=True)
@pytest.mark.parametrize("script", SCRIPTS, ids=NAMES)
def test_example_through_a_real_worker(script: Path, broker_setup: RealSetup, broker_worker: WorkerProcess) -> None:
    check_through(script, broker_setup, broker_worker)


@pytest.mark.redis
@pytest.mark.rabbitmq
@pytest.mark.parametrize("broker", ["rabbitmq"], indirect=True)
@pytest.mark.parametrize("script", ON_RABBITMQ, ids=[script.stem for script in ON_RABBITMQ])
def test_example_through_a_real_worker_on_rabbitmq(
    script: Path, broker_setup: RealSetup, broker_worker: WorkerProcess
) -> None:
    check_through(script, broker_setup, broker_worker)


def check_through(script: Path, setup: RealSetup, worker: WorkerProcess) -> None:
    submitted = worker.output().count("Task batchline.submit[")
    check_output(expected(script), run_example(script, setup.env))
    assert worker.output().count("Task batchline.submit[") > submitted  # the worker, not the script, ran it


def test_a_differing_line_is_reported() -> None:
    with pytest.raises(AssertionError, match="expected 1 lines"):
        check_output(["a"], "a\nb\n")
    with pytest.raises(AssertionError, match="line 1"):
        check_output(["a"], "b\n")
    with pytest.raises(AssertionError):  # a placeholder keeps its form: not any text
        check_output(["Batch {batch_id} submitted"], "Batch xyz submitted\n")
    check_output(["Batch {batch_id} submitted"], f"Batch batch_{'a' * 32} submitted\n")

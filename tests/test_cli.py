"""The `batchline` command, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def batchline(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "batchline", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def test_demo_runs_a_batch_end_to_end_on_the_embedded_default(clean_env: dict[str, str]) -> None:
    result = batchline("demo", env={**clean_env, "COLUMNS": "120"})
    assert result.returncode == 0, result.stderr
    assert "embedded" in result.stdout
    for cid in ("math-1", "math-2", "science-1", "science-2"):
        assert f"Mock response for {cid}" in result.stdout
    assert "COMPLETED" in result.stdout
    assert "4 succeeded, 0 failed." in result.stdout


def test_an_error_is_one_clear_line_and_a_non_zero_exit(clean_env: dict[str, str]) -> None:
    result = batchline("demo", "--model", "cohere:large", env=clean_env)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "NotImplementedError" in lines[0] and "'test'" in lines[0]


def test_help_lists_the_commands(clean_env: dict[str, str]) -> None:
    result = batchline("--help", env=clean_env)
    assert result.returncode == 0
    for command in ("demo", "worker", "emulator"):
        assert command in result.stdout

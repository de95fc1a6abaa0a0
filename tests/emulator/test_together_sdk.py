"""Together's official SDK (`together` on PyPI) drives the emulator unchanged. The SDK pins `rich<15` and batchline
needs `rich>=15`, so it runs in an isolated environment uv builds (cached after the first run): the script
together_sdk_script.py uploads with the SDK's three-step upload, creates, polls, lists and downloads, and prints what
it saw. Skipped only when the package registry cannot be reached."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from batchline.emulator import Emulator

SCRIPT = Path(__file__).with_name("together_sdk_script.py")
# What uv prints when it cannot reach the registry (DNS, refused or timed-out connections, offline mode).
_NETWORK_FAILURE = re.compile(
    r"dns error|failed to lookup address|connection refused|connect error|timed out|network is unreachable"
    r"|error sending request|failed to fetch|offline|could not connect",
    re.IGNORECASE,
)


def _uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    for candidate in (found, str(Path.home() / ".local" / "bin" / "uv")):
        if Path(candidate).exists():
            return candidate
    raise AssertionError("uv is needed to build the isolated environment for Together's SDK and was not found")


def test_together_sdk_runs_a_batch_against_the_emulator(emulator: Emulator, tmp_path: Path) -> None:
    root = emulator.together_base_url.removesuffix("/v1")  # the SDK's paths carry /v1 themselves
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TOGETHER_", "VIRTUAL_ENV"))},
        "TOGETHER_API_KEY": "together-test-key",
        "TOGETHER_BASE_URL": root,
    }
    command = [_uv(), "run", "--no-project", "--isolated", "--with", "together", "python", str(SCRIPT), str(tmp_path)]
    done = subprocess.run([*command, "4"], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    if done.returncode != 0 and _NETWORK_FAILURE.search(done.stderr) and "Traceback" not in done.stderr:
        pytest.skip(f"the package registry could not be reached to install together: {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])

    assert summary["file_id"].startswith("file-")
    assert summary["file_purpose"] == "batch-api"
    assert summary["file_type"] == "jsonl"
    size = (tmp_path / "batch_input.jsonl").stat().st_size
    assert summary["file_bytes"] == summary["retrieved_bytes"] == size  # the PUT body is what the emulator stored
    assert summary["input_file_id"] == summary["file_id"]
    assert summary["status"] == "COMPLETED"
    assert set(summary["statuses"]) <= {"VALIDATING", "IN_PROGRESS", "COMPLETED"}
    assert summary["progress"] == 100.0
    assert summary["model_id"] == "meta-llama/Llama-3.3-70B-Instruct-Turbo"
    assert summary["output_file_id"]
    assert summary["listed_ids"] == [summary["batch_id"]]
    assert sorted(summary["answered"]) == ["r0", "r1", "r2", "r3"]
    assert all(isinstance(text, str) and text for text in summary["answered"].values())
    assert emulator.stats()["openai"]["batches_created"] == 1

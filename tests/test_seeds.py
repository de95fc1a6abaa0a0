"""Every code example of the seeds runs with only its imports and model string changed, and prints its `#>` lines.

The examples are read from ../shared/seeds at test time, so the test follows the seeds as they are. A `#>` line that
shows a provider-made id (`batch_mock_123`) is checked for the form of a batchline id instead.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .conftest import ROOT, SHARED, RealSetup, WorkerProcess

SEED = SHARED / "seeds" / "000_c45d5c6b4691d3d0.txt"
BLOCK = re.compile(r'```python \{title="(?P<title>[^"]+)"[^}]*\}\n(?P<code>.*?)```', re.S)
PROVIDER_IDS = {"batch_mock_123": r"batch_[0-9a-f]{32}"}


def examples() -> list[tuple[str, str]]:
    return [(m["title"], m["code"]) for m in BLOCK.finditer(SEED.read_text())]


def adapt(code: str, model: str) -> str:
    """Change only the import lines (to batchline) and the model string."""
    code = code.replace("from pydantic_ai.direct import", "from batchline import")
    return code.replace("'openai:gpt-4o-mini'", repr(model))


def expected_lines(code: str) -> list[str]:
    return [line.strip()[3:] for line in code.splitlines() if line.strip().startswith("#> ")]


def check_output(code: str, stdout: str) -> None:
    """Each `#>` line appears in the output, in order (a `#>` under a loop shows the loop's first pass)."""
    lines = stdout.splitlines()
    position = 0
    for expected in expected_lines(code):
        pattern = re.escape(expected.strip())
        for provider_id, form in PROVIDER_IDS.items():
            pattern = pattern.replace(re.escape(provider_id), form)
        for index in range(position, len(lines)):
            if re.fullmatch(pattern, lines[index].strip()):
                position = index + 1
                break
        else:
            raise AssertionError(f"expected a line {expected!r} after line {position} of:\n{stdout}")


def run_example(code: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_seed_has_examples_with_expected_output() -> None:
    found = examples()
    assert len(found) >= 7
    assert all(expected_lines(code) for _, code in found)


@pytest.mark.parametrize(("title", "code"), examples(), ids=[title for title, _ in examples()])
def test_seed_example_on_the_embedded_default(title: str, code: str, clean_env: dict[str, str]) -> None:
    code = adapt(code, "test")
    check_output(code, run_example(code, clean_env))


@pytest.mark.redis
@pytest.mark.parametrize(("title", "code"), examples(), ids=[title for title, _ in examples()])
def test_seed_example_through_a_real_worker(
    title: str, code: str, real_setup: RealSetup, real_worker: WorkerProcess
) -> None:
    code = adapt(code, "test")
    check_output(code, run_example(code, real_setup.env))
    assert "batchline.submit" in real_worker.output()


def test_a_missing_line_is_reported() -> None:
    with pytest.raises(AssertionError, match="expected a line"):
        check_output("print('a')\n#> b", "a\n")
    with pytest.raises(AssertionError):  # a provider id keeps its form: not any text
        check_output("#> Batch batch_mock_123 submitted", "Batch xyz submitted\n")
    check_output("#> Batch batch_mock_123 submitted", f"Batch batch_{'a' * 32} submitted\n")

"""README.md's commands and Python blocks, run as a reader runs them.

Every fenced block of the README has a comment right above it that says how it is proven:
- `<!-- run -->`: run here, in the clone's folder (bash blocks with `bash -e`, Python blocks with this Python),
  against the emulator and the real Redis, with only the stand-ins of STAND_INS changed (a placeholder key, the
  tests' Redis database);
- `<!-- run: background -->`: started before the next `run` block and stopped after it (a worker the reader leaves
  running in another terminal);
- `<!-- covered: REF -->`: run elsewhere, by the test file or test REF (`tests/x.py` or `tests/x.py::test_name`) or,
  for `.ci/run`, by CI, each of whose command lines begins with one of the block's commands.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import orjson
import pytest

from batchline.emulator import Emulator

from .conftest import ROOT, RealSetup, make_real_setup
from .waiting import stop_group, wait_for

README = ROOT / "README.md"
BLOCK = re.compile(r"<!-- (?P<how>[^>]*?) -->\n```(?P<lang>\w+)\n(?P<code>.*?)\n```", re.S)
FENCE = re.compile(r"^```\w+$", re.M)
README_REDIS = "redis://127.0.0.1:6379/0"


@dataclass
class Block:
    how: str
    lang: str
    code: str
    line: int

    @property
    def commands(self) -> list[str]:
        """The block's command lines, comments and heredoc bodies left out."""
        lines, heredoc = [], None
        for raw in self.code.splitlines():
            if heredoc is not None:
                heredoc = None if raw.strip() == heredoc else heredoc
                continue
            line = raw.split("  #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
            if match := re.search(r"<<'?(\w+)'?", line):
                heredoc = match[1]
        return lines


def blocks() -> list[Block]:
    text = README.read_text()
    return [Block(m["how"], m["lang"], m["code"], text[: m.start()].count("\n") + 1) for m in BLOCK.finditer(text)]


def test_every_block_is_run_or_covered() -> None:
    found = blocks()
    assert len(found) == len(FENCE.findall(README.read_text())), "a fenced block has no run/covered comment above it"
    for block in found:
        how, _, ref = block.how.partition(": ")
        assert how in ("run", "covered"), f"README line {block.line}: unknown marker {block.how!r}"
        if how == "covered" and ref != ".ci/run":
            path, _, name = ref.partition("::")
            assert (ROOT / path).is_file(), f"README line {block.line}: {path} does not exist"
            assert not name or f"def {name}(" in (ROOT / path).read_text(), f"README line {block.line}: no {ref}"


def test_ci_runs_the_commands_it_covers() -> None:
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    for block in blocks():
        if block.how == "covered: .ci/run":
            for command in block.commands:
                assert any(line.startswith(command) for line in ci), (
                    f"README line {block.line}: CI never runs {command}"
                )


# -- running the blocks -----------------------------------------------------------------------------------------------
def provider_env(emulator: Emulator) -> dict[str, str]:
    return {
        "OPENAI_BASE_URL": emulator.openai_base_url,
        "ANTHROPIC_BASE_URL": emulator.anthropic_base_url,
        "GOOGLE_GEMINI_BASE_URL": emulator.gemini_base_url,
    }


def stand_ins(setup: RealSetup) -> dict[str, str]:
    """What a reader types differently: their own key, and here the tests' Redis database."""
    return {"sk-...": "sk-readme-test", README_REDIS: setup.settings.broker_url or ""}


def prepared(block: Block, setup: RealSetup) -> str:
    code = block.code
    for placeholder, value in stand_ins(setup).items():
        code = code.replace(placeholder, value)
    return code


def reader_env(setup: RealSetup, emulator: Emulator) -> dict[str, str]:
    """A shell with the setup's key prefix and queue (so the run is this test's own), the emulator's URLs, and no
    broker: the README's own `export` lines give it."""
    env = {k: v for k, v in setup.env.items() if k not in ("BATCHLINE_BROKER_URL", "BATCHLINE_REDIS_URL")}
    return {**env, **provider_env(emulator), "COLUMNS": "120"}


def runs() -> list[tuple[list[Block], Block]]:
    """Each `run` block with the background blocks it needs."""
    pending: list[Block] = []
    found = []
    for block in blocks():
        if block.how == "run: background":
            pending.append(block)
        elif block.how == "run":
            found.append((pending, block))
            pending = []
    return found


@pytest.fixture
def readme_setup(redis_url: str) -> Iterator[RealSetup]:
    setup = make_real_setup(redis_url)
    yield setup
    setup.cleanup()


@pytest.fixture
def clone_left_clean() -> Iterator[set[Path]]:
    """Blocks run in the clone's folder, as a reader runs them; the files they name and write there are removed
    afterwards (only those: other tests may run at the same time)."""
    before = set(ROOT.iterdir())
    written: set[Path] = set()
    yield written
    for path in set(ROOT.iterdir()) - before:
        if path in written:
            path.unlink()


class Background:
    """A block left running, as in a second terminal; stopped with its whole process group."""

    def __init__(self, code: str, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                ["bash", "-ec", code], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 90.0) -> None:
        def printed() -> bool:
            assert self.process.poll() is None, f"exited {self.process.returncode}:\n{self.output()[-3000:]}"
            return text in self.output()

        wait_for(printed, repr(text), timeout=timeout, interval=0.2, log=self)

    def stop(self) -> None:
        """SIGTERM to the whole group (`uv run` and the command it runs), and wait until none of it runs: `uv` can end
        before its child, which may still publish to the queue while it shuts down."""
        stop_group(self.process, lambda: os.killpg(self.process.pid, signal.SIGTERM))


@pytest.mark.redis
@pytest.mark.parametrize(("background", "block"), runs(), ids=[f"line-{block.line}" for _, block in runs()])
def test_readme_block_runs(
    background: list[Block],
    block: Block,
    readme_setup: RealSetup,
    emulator: Emulator,
    clone_left_clean: set[Path],
    tmp_path: Path,
) -> None:
    env = reader_env(readme_setup, emulator)
    started = [Background(prepared(b, readme_setup), env, tmp_path / f"bg-{i}.log") for i, b in enumerate(background)]
    try:
        for process in started:
            process.wait_for(" ready.")
        if block.lang == "python":  # a script on its own: the embedded default, as a reader's first try
            command, env = (
                [sys.executable, "-c", prepared(block, readme_setup)],
                {
                    **{k: v for k, v in env.items() if not k.startswith("BATCHLINE_")},
                    "OPENAI_API_KEY": "sk-readme-test",
                },
            )
        else:
            command = ["bash", "-ec", prepared(block, readme_setup)]
        clone_left_clean.update(ROOT / name for name in re.findall(r"[\w.-]+\.jsonl", block.code))
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
        assert result.returncode == 0, f"README line {block.line}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        check_outcome(block, result.stdout)
    finally:
        for process in started:
            process.stop()


def check_outcome(block: Block, stdout: str) -> None:
    """What the reader would look at after the block."""
    if "answers.jsonl" in block.code:
        lines = [orjson.loads(line) for line in (ROOT / "answers.jsonl").read_bytes().splitlines()]
        assert sorted(line["custom_id"] for line in lines) == ["math-1", "math-2", "science-1"]
        assert all(line["status"] == "succeeded" for line in lines)
    if block.lang == "python" and "model_request_batch" in block.code:
        assert re.search(r"^math-1 \S", stdout, re.M) and re.search(r"^math-2 \S", stdout, re.M), stdout
    if block.lang == "python" and "embed_batch" in block.code:  # each text's vector, at the length asked for
        assert re.search(r"^faq-1 256$", stdout, re.M) and re.search(r"^faq-2 256$", stdout, re.M), stdout
        assert re.search(r"^\d+ input tokens, cost \d", stdout, re.M), stdout


def section(heading: str) -> list[Block]:
    text = README.read_text()
    start = text.index(f"\n## {heading}")
    end = text.find("\n## ", start + 1)
    lines = text[:start].count("\n"), text[: end if end > 0 else len(text)].count("\n")
    return [block for block in blocks() if lines[0] < block.line <= lines[1]]


@pytest.mark.redis
def test_worker_beat_and_flower_commands_start(readme_setup: RealSetup, emulator: Emulator, tmp_path: Path) -> None:
    """Each long-running command of "Workers, beat and Flower on Redis" starts and serves, as typed."""
    block = next(b for b in section("Workers, beat and Flower on Redis") if "flower" in b.code)
    env = reader_env(readme_setup, emulator)
    exports = [line for line in block.commands if line.startswith("export ")]
    servers = [line for line in block.commands if not line.startswith("export ")]
    assert len(servers) == 3, servers
    env["BATCHLINE_SWEEP_INTERVAL"] = "1"  # so that beat's first sweep is due at once
    port = free_port()
    for index, command in enumerate(servers):
        kind = "flower" if " flower" in command else "beat" if " beat" in command else "worker"
        if kind == "flower":
            command += f" --port={port} --address=127.0.0.1"
        if kind == "beat":
            command += f" --schedule={tmp_path / 'beat-schedule'}"
        code = prepared(Block("run", "bash", "\n".join([*exports, command]), block.line), readme_setup)
        process = Background(code, env, tmp_path / f"{kind}-{index}.log")
        try:
            if kind == "worker":
                process.wait_for(" ready.")
            elif kind == "beat":  # it sends the sweep to batchline's queue
                wait_for(lambda: b"batchline.sweep" in b"".join(queued(readme_setup)), "beat's sweep on the queue")
            else:
                process.wait_for("Visit me at")
                assert httpx2.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 401
                answer = httpx2.get(f"http://127.0.0.1:{port}/", auth=("ops", "change-me"), timeout=10)
                assert answer.status_code == 200
        finally:
            process.stop()
        assert "sk-readme-test" not in process.log.read_text(), "a key reached a log line"


def queued(setup: RealSetup) -> list[bytes]:
    key = setup.settings.celery_key_prefix + (setup.settings.queue or "")  # kombu puts its prefix on the queue's list
    return setup.client.lrange(key, 0, -1)  # type: ignore[return-value]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

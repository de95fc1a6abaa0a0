"""`batchline submit` of texts to embed and `batchline results` of their vectors, run as a user runs them (in
subprocesses) against a real Redis, a real worker and the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from batchline.emulator import Emulator
from batchline.emulator.answers_common import embedding, tokens

from .conftest import RealSetup, WorkerProcess, make_real_setup
from .openai_anthropic_helpers import provider_env
from .test_cli_jobs import batchline, write_jsonl

pytestmark = pytest.mark.redis

TEXTS = {f"doc-{i}": f"Document {i} says something" for i in range(5)}


@pytest.fixture
def setup_with_worker(redis_url: str, emulator: Emulator, tmp_path: Path) -> Iterator[RealSetup]:
    setup = make_real_setup(redis_url, max_poll_interval=1)
    process = WorkerProcess({**setup.env, **provider_env(emulator)}, tmp_path / "worker.log")
    try:
        yield setup
    finally:
        process.stop()
        setup.cleanup()


def test_submit_texts_wait_and_read_their_vectors(setup_with_worker: RealSetup, tmp_path: Path) -> None:
    env = setup_with_worker.env
    rows = [{"custom_id": cid, "text": text} for cid, text in TEXTS.items()]
    path = write_jsonl(tmp_path / "texts.jsonl", rows)
    model = "openai:text-embedding-3-small"
    submitted = batchline("submit", str(path), "--model", model, "--dimensions", "4", "--poll-interval", "0.2", env=env)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()

    waited = batchline("wait", job_id, env=env)
    assert waited.returncode == 0 and "COMPLETED, 5 succeeded, 0 failed" in waited.stdout
    used = sum(tokens(text) for text in TEXTS.values())
    assert f"{used} input + 0 output tokens, cost $0.0000" in waited.stdout  # priced, not unknown, not 0

    out = tmp_path / "vectors.jsonl"
    exported = batchline("results", job_id, "-o", str(out), env=env)
    assert exported.returncode == 0 and "5 results written" in exported.stdout
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert lines == [
        {"custom_id": cid, "status": "succeeded", "embedding": embedding(text, 4), "error": None}
        for cid, text in TEXTS.items()
    ]
    provider = batchline("results", job_id, "--format", "provider", env=env)  # the Batch API's own output lines
    bodies = [orjson.loads(line)["response"]["body"] for line in provider.stdout.splitlines()]
    assert [body["data"][0]["embedding"] for body in bodies] == [line["embedding"] for line in lines]


def test_bad_embedding_input_is_one_clear_line(real_setup: RealSetup, tmp_path: Path) -> None:
    env = real_setup.env
    texts = write_jsonl(tmp_path / "texts.jsonl", [{"custom_id": "a", "text": "fine"}, {"custom_id": "b", "text": ""}])
    chat_model = batchline("submit", str(texts), "--model", "openai:gpt-4o-mini", env=env)
    assert chat_model.returncode == 1 and "is not an embedding model" in chat_model.stderr
    empty = batchline("submit", str(texts), "--model", "openai:text-embedding-3-small", env=env)
    assert empty.returncode == 1 and "input 'b' is an empty text" in empty.stderr
    assert len(empty.stderr.strip().splitlines()) == 1
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"custom_id": "a", "prompt": "hi"}])
    misplaced = batchline("submit", str(prompts), "--model", "test", "--dimensions", "8", env=env)
    assert misplaced.returncode == 1 and "--dimensions and --input-type are for embedding inputs" in misplaced.stderr

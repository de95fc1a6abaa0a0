"""Raw mode: a provider's own batch file runs as a job unchanged, and its results export in the provider's format."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from batchline import (
    BatchInputError,
    BatchStatus,
    batch_create_sync,
    batch_export_sync,
    batch_results_sync,
    batch_wait_sync,
)
from batchline.config import Settings
from batchline.emulator import Emulator
from batchline.raw import RawRequest, read_jsonl

from .conftest import RECORDED, ROOT, RealSetup, WorkerProcess, make_real_setup, set_embedded_settings
from .openai_anthropic_helpers import fresh_runtime, provider_env, uploaded_bodies

RECORDED_INPUT = RECORDED / "openai" / "batch_input.jsonl"


@pytest.fixture
def provider_worker_env(emulator: Emulator, embedded: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    for name, value in provider_env(emulator).items():
        monkeypatch.setenv(name, value)
    fresh_runtime()
    yield emulator
    fresh_runtime()


def lines_of(rows: list[dict[str, object]]) -> list[RawRequest]:
    path = io.BytesIO(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    from batchline.raw import parse_lines

    return list(parse_lines(path))


def test_a_recorded_openai_input_file_runs_unchanged(provider_worker_env: Emulator, embedded: Settings) -> None:
    set_embedded_settings(replace(embedded, cleanup_files=False))  # keep the uploaded file to look at
    requests = read_jsonl(RECORDED_INPUT)
    sent = {line["custom_id"]: line for line in map(orjson.loads, RECORDED_INPUT.read_bytes().splitlines())}
    batch = batch_create_sync("openai:gpt-4o-mini", requests)
    assert batch.status is BatchStatus.COMPLETED and batch.completed_count == len(sent)
    # The emulator received each line's body exactly as the file has it, under its own endpoint.
    assert uploaded_bodies(provider_worker_env) == {cid: line["body"] for cid, line in sent.items()}
    assert provider_worker_env.stats()["calls"].get("POST /v1/batches") == 1

    # Chat completions still decode into ModelResponses...
    results = batch_results_sync(batch)
    assert [r.custom_id for r in results] == list(sent)
    assert all(r.response is not None and r.response.text for r in results)

    # ...and export as OpenAI's own output file.
    out = io.BytesIO()
    assert batch_export_sync(batch, out) == len(sent)
    exported = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [line["custom_id"] for line in exported] == list(sent)
    for line in exported:
        assert set(line) == {"id", "custom_id", "response", "error"} and line["error"] is None
        assert line["id"].startswith("batch_req_")
        assert line["response"]["status_code"] == 200
        assert line["response"]["body"]["object"] == "chat.completion"


def test_embeddings_run_raw_and_export_with_their_vectors(provider_worker_env: Emulator) -> None:
    rows: list[dict[str, object]] = [
        {
            "custom_id": f"emb-{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "text-embedding-3-small", "input": f"text {i}"},
        }
        for i in range(3)
    ]
    batch = batch_create_sync("openai:text-embedding-3-small", lines_of(rows))
    assert batch.status is BatchStatus.COMPLETED
    out = io.BytesIO()
    batch_export_sync(batch.id, out)
    vectors = [orjson.loads(line)["response"]["body"]["data"][0]["embedding"] for line in out.getvalue().splitlines()]
    assert len(vectors) == 3 and all(len(v) > 0 and all(isinstance(x, float) for x in v) for v in vectors)
    # They are no model responses: batch_results gives each its vector instead.
    results = batch_results_sync(batch)
    assert [r.response for r in results] == [None] * 3 and [r.embedding for r in results] == vectors


def test_lines_of_two_endpoints_or_models_become_separate_batches(provider_worker_env: Emulator) -> None:
    rows: list[dict[str, object]] = [
        {"custom_id": "chat", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini",
         "messages": [{"role": "user", "content": "hi"}]}},
        {"custom_id": "emb", "method": "POST", "url": "/v1/embeddings", "body": {"model": "text-embedding-3-small",
         "input": "hi"}},
        {"custom_id": "chat-4o", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o",
         "messages": [{"role": "user", "content": "hi"}]}},
    ]  # fmt: skip
    batch = batch_create_sync("openai:gpt-4o-mini", lines_of(rows))
    assert batch.status is BatchStatus.COMPLETED and len(batch.provider_batches) == 3
    assert provider_worker_env.stats()["openai"]["batches_created"] == 3


def test_an_anthropic_params_file_runs_unchanged_and_exports_as_anthropic_results(
    provider_worker_env: Emulator,
) -> None:
    rows: list[dict[str, object]] = [
        {
            "custom_id": f"a{i}",
            "params": {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": f"Hi {i}"}]},
        }
        for i, model in enumerate(["claude-haiku-4-5", "claude-sonnet-4-5"])
    ]
    batch = batch_wait_sync(batch_create_sync("anthropic:claude-haiku-4-5", lines_of(rows), poll_interval=0.2))
    assert batch.status is BatchStatus.COMPLETED and len(batch.provider_batches) == 1  # models mix in one batch
    out = io.BytesIO()
    batch_export_sync(batch, out)
    exported = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [line["custom_id"] for line in exported] == ["a0", "a1"]
    assert all(line["result"]["type"] == "succeeded" for line in exported)
    assert [line["result"]["message"]["model"] for line in exported] == ["claude-haiku-4-5", "claude-sonnet-4-5"]
    assert [r.response.text for r in batch_results_sync(batch) if r.response] == [
        "Mock response for a0",
        "Mock response for a1",
    ]


def test_bad_raw_lines_are_refused_before_anything_is_sent(provider_worker_env: Emulator, tmp_path: Path) -> None:
    bad_url = [{"custom_id": "x", "method": "POST", "url": "/v1/images", "body": {"model": "gpt-4o-mini"}}]
    with pytest.raises(BatchInputError, match="not an OpenAI batch endpoint"):
        batch_create_sync("openai:gpt-4o-mini", lines_of(bad_url))
    no_model = [{"custom_id": "x", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": []}}]
    with pytest.raises(BatchInputError, match="names no model"):
        batch_create_sync("openai:gpt-4o-mini", lines_of(no_model))
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(RECORDED_INPUT.read_bytes() + b'{"custom_id": "late", "method": "POST"\n')
    with pytest.raises(BatchInputError, match="line 4"):
        read_jsonl(broken)
    with pytest.raises(BatchInputError, match="takes no raw requests"):
        batch_create_sync("test", read_jsonl(RECORDED_INPUT))
    assert provider_worker_env.stats()["calls"].get("POST /v1/files") is None


@pytest.mark.redis
def test_the_cli_submits_a_raw_file_and_exports_openai_output(
    redis_url: str, emulator: Emulator, tmp_path: Path
) -> None:
    setup: RealSetup = make_real_setup(redis_url)
    env = {**setup.env, **provider_env(emulator), "COLUMNS": "200"}
    process = WorkerProcess(env, tmp_path / "worker.log")
    try:

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            command = [sys.executable, "-m", "batchline", *args]
            return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)

        submitted = cli("submit", str(RECORDED_INPUT), "--model", "openai:gpt-3.5-turbo")  # the model its bodies name
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.strip()
        assert cli("wait", job_id).returncode == 0
        out = tmp_path / "out.jsonl"
        assert cli("results", job_id, "-o", str(out)).returncode == 0
        lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        assert len(lines) == 3 and all(line["response"]["status_code"] == 200 for line in lines)
        decoded = tmp_path / "decoded.jsonl"
        assert cli("results", job_id, "--format", "batchline", "-o", str(decoded)).returncode == 0
        assert all(orjson.loads(line)["response"]["parts"] for line in decoded.read_bytes().splitlines())
    finally:
        process.stop()
        setup.cleanup()

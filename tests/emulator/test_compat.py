"""The OpenAI-compatible batch APIs as their clients see them against the emulator: the groq SDK, the openai SDK's
`AzureOpenAI`, and Together's REST calls as batchline's `together:` provider makes them (its official SDK pins a `rich`
older than batchline's, so test_together_sdk.py runs that SDK in an isolated environment)."""

from __future__ import annotations

import json
from typing import Any

import groq
import httpx2
import openai
import pytest

from batchline.emulator import BatchFault, Emulator


def _lines(count: int, url: str, model: str) -> bytes:
    rows = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": url,
            "body": {"model": model, "messages": [{"role": "user", "content": f"q{i}"}]},
        }
        for i in range(count)
    ]
    return b"\n".join(json.dumps(row).encode() for row in rows) + b"\n"


def _contents(text: str) -> dict[str, str]:
    lines = [json.loads(line) for line in text.splitlines() if line]
    return {line["custom_id"]: line["response"]["body"]["choices"][0]["message"]["content"] for line in lines}


def test_groq_sdk_runs_a_batch_with_a_seven_day_window(emulator: Emulator) -> None:
    with groq.Groq(base_url=emulator.groq_base_url, api_key="gsk_test", max_retries=0) as client:
        file = client.files.create(
            file=("in.jsonl", _lines(5, "/v1/chat/completions", "llama-3.1-8b-instant")), purpose="batch"
        )
        created = client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="7d", metadata={"run": "g"}
        )
        batch = client.batches.retrieve(created.id)
        assert batch.status == "completed" and batch.metadata == {"run": "g"}
        assert batch.output_file_id
        text = client.files.content(batch.output_file_id).text()
        assert _contents(text) == {f"r{i}": f"Mock response for r{i}" for i in range(5)}
        assert created.id in [b.id for b in client.batches.list().data]
        with pytest.raises(groq.BadRequestError, match="completion_window"):
            client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="8d")
    calls = emulator.stats()["calls"]
    assert calls["POST /openai/v1/batches"] == 2 and "POST /v1/batches" not in calls  # Groq's own paths


def test_azure_openai_client_runs_a_batch_on_a_deployment(emulator: Emulator) -> None:
    with openai.AzureOpenAI(
        azure_endpoint=emulator.azure_endpoint, api_key="azure-key", api_version="2024-10-21", max_retries=0
    ) as client:
        data = _lines(4, "/chat/completions", "my-gpt-4o-mini-batch")
        file = client.files.create(file=("in.jsonl", data), purpose="batch")
        created = client.batches.create(input_file_id=file.id, endpoint="/chat/completions", completion_window="24h")  # type: ignore[arg-type]
        batch = client.batches.retrieve(created.id)
        assert batch.status == "completed" and batch.model == "my-gpt-4o-mini-batch"
        assert batch.output_file_id
        text = client.files.content(batch.output_file_id).text
        assert _contents(text) == {f"r{i}": f"Mock response for r{i}" for i in range(4)}
    calls = emulator.stats()["calls"]
    assert calls["POST /openai/batches"] == 1 and calls["POST /openai/files"] == 1


def test_azure_wants_its_api_version_and_its_api_key_header(emulator: Emulator) -> None:
    with httpx2.Client(base_url=emulator.azure_endpoint) as client:
        no_version = client.get("/openai/batches", headers={"api-key": "k"})
        bearer = client.get(
            "/openai/batches", params={"api-version": "2024-10-21"}, headers={"Authorization": "Bearer k"}
        )
        good = client.get("/openai/batches", params={"api-version": "2024-10-21"}, headers={"api-key": "k"})
    assert no_version.status_code == 404 and "api-version" in no_version.json()["error"]["message"]
    assert bearer.status_code == 401 and bearer.json()["error"]["code"] == "401"
    assert good.status_code == 200 and good.json()["object"] == "list"


def _together(emulator: Emulator) -> httpx2.Client:
    return httpx2.Client(base_url=emulator.together_base_url, headers={"Authorization": "Bearer together-key"})


def _together_batch(client: httpx2.Client, data: bytes) -> dict[str, Any]:
    form = {"purpose": "batch-api", "file_name": "in.jsonl", "file_type": "jsonl"}
    file = client.post("/files/upload", data=form, files={"file": ("in.jsonl", data)}).json()
    body = {"input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    answer = client.post("/batches", json=body)
    assert answer.status_code == 200, answer.text
    job: dict[str, Any] = answer.json()["job"]  # Together wraps the batch it created
    return job


def test_together_batch_job_shape_and_lifecycle(emulator: Emulator) -> None:
    emulator.configure(stage_seconds=100)
    with _together(emulator) as client:
        job = _together_batch(client, _lines(3, "/v1/chat/completions", "meta-llama/Llama-3.3-70B-Instruct-Turbo"))
        assert job["status"] == "VALIDATING" and "metadata" not in job and "request_counts" not in job
        emulator.advance_clock(150)
        assert client.get(f"/batches/{job['id']}").json()["status"] == "IN_PROGRESS"
        emulator.advance_clock(500)
        done = client.get(f"/batches/{job['id']}").json()
        assert done["status"] == "COMPLETED" and done["progress"] == 100.0
        assert done["model_id"] == "meta-llama/Llama-3.3-70B-Instruct-Turbo"
        listed = client.get("/batches").json()
        assert isinstance(listed, list) and [b["id"] for b in listed] == [job["id"]]  # a bare array
        text = client.get(f"/files/{done['output_file_id']}/content").text
        assert _contents(text) == {f"r{i}": f"Mock response for r{i}" for i in range(3)}


def test_together_failed_batch_says_why(emulator: Emulator) -> None:
    emulator.add_fault(BatchFault(outcome="fail", code="invalid_model", message="Model not available for batch"))
    with _together(emulator) as client:
        job = _together_batch(client, _lines(2, "/v1/chat/completions", "m"))
        failed = client.get(f"/batches/{job['id']}").json()
        assert failed["status"] == "FAILED" and failed["error"] == "Model not available for batch"


def test_together_three_step_upload_and_docs_lines_without_window(emulator: Emulator) -> None:
    """The upload Together's SDK makes (announce, PUT to the storage URL without a key, preprocess), then a file of
    `custom_id` + `body` lines and a create naming no window, as Together's docs write them."""
    rows = [
        {"custom_id": f"r{i}", "body": {"model": "m", "messages": [{"role": "user", "content": "q"}]}} for i in (0, 1)
    ]
    data = b"".join(json.dumps(row).encode() + b"\n" for row in rows)
    with _together(emulator) as client:
        form = {"purpose": "batch-api", "file_name": "in.jsonl", "file_type": "jsonl", "checksum": "x"}
        announced = client.post("/files", files={name: (None, value) for name, value in form.items()})
        assert announced.status_code == 302, announced.text
        file_id = announced.headers["X-Together-File-Id"]
        assert httpx2.put(announced.headers["Location"], content=data).status_code == 200  # presigned: no key
        described = client.post(f"/files/{file_id}/preprocess").json()
        assert described["id"] == file_id and described["FileType"] == "jsonl" and described["bytes"] == len(data)
        assert described["purpose"] == "batch-api" and described["LineCount"] == 2
        assert client.get(f"/files/{file_id}").json()["FileType"] == "jsonl"
        job = client.post("/batches", json={"input_file_id": file_id, "endpoint": "/v1/chat/completions"}).json()["job"]
        done = client.get(f"/batches/{job['id']}").json()
        assert done["status"] == "COMPLETED", done
        assert set(_contents(client.get(f"/files/{done['output_file_id']}/content").text)) == {"r0", "r1"}
        wrong = data.replace(b'"body"', b'"url": "/v1/embeddings", "body"')
        file = client.post("/files/upload", data=form, files={"file": ("in.jsonl", wrong)}).json()
        body = {"input_file_id": file["id"], "endpoint": "/v1/chat/completions"}
        failed_id = client.post("/batches", json=body).json()["job"]["id"]
        assert client.get(f"/batches/{failed_id}").json()["status"] == "FAILED"  # a url given must still match

"""Gemini batch mode and Files API as the official google-genai SDK sees them against the emulator."""

from __future__ import annotations

import io
import json

import httpx2
import pytest
from google import genai
from google.genai import errors
from google.genai.types import JobState

from batchline.emulator import BatchFault, Emulator, Limits

_INLINE = [{"contents": [{"parts": [{"text": f"question {i}"}], "role": "user"}]} for i in range(3)]


def _upload(client: genai.Client, count: int) -> str:
    lines = [
        json.dumps({"key": f"k{i}", "request": {"contents": [{"parts": [{"text": f"q{i}"}], "role": "user"}]}})
        for i in range(count)
    ]
    file = client.files.upload(
        file=io.BytesIO("\n".join(lines).encode()), config={"mime_type": "application/jsonl", "display_name": "in"}
    )
    assert file.name is not None and file.size_bytes == len("\n".join(lines))
    return file.name


def test_inline_lifecycle(gemini_client: genai.Client, emulator: Emulator) -> None:
    job = gemini_client.batches.create(model="gemini-2.5-flash", src=_INLINE, config={"display_name": "inline"})  # type: ignore[arg-type]
    assert job.state == JobState.JOB_STATE_PENDING and job.display_name == "inline"
    assert job.name and job.name.startswith("batches/") and job.model == "models/gemini-2.5-flash"
    job = gemini_client.batches.get(name=job.name)
    assert job.state == JobState.JOB_STATE_SUCCEEDED and job.end_time is not None
    assert job.dest is not None and job.dest.inlined_responses is not None
    texts = [r.response.text for r in job.dest.inlined_responses if r.response is not None]
    assert texts == ["Mock response for 0", "Mock response for 1", "Mock response for 2"], "inline keeps input order"
    assert emulator.stats()["gemini"]["batches_created"] == 1


def test_file_lifecycle(gemini_client: genai.Client, emulator: Emulator) -> None:
    name = _upload(gemini_client, 12)
    job = gemini_client.batches.create(model="gemini-2.5-flash", src=name)
    assert job.name
    job = gemini_client.batches.get(name=job.name)
    assert job.state == JobState.JOB_STATE_SUCCEEDED and job.dest is not None and job.dest.file_name
    lines = [json.loads(line) for line in gemini_client.files.download(file=job.dest.file_name).splitlines()]
    keys = [line["key"] for line in lines]
    assert sorted(keys) == sorted(f"k{i}" for i in range(12)) and keys != [f"k{i}" for i in range(12)]
    for line in lines:
        part = line["response"]["candidates"][0]["content"]["parts"][0]
        assert part == {"text": f"Mock response for {line['key']}"}
    output = gemini_client.files.get(name=job.dest.file_name)
    assert output.source is not None and output.source.value == "GENERATED" and output.download_uri
    assert emulator.stats()["gemini"] == {"batches_created": 1, "files_created": 1, "requests_received": 12}


def test_stages_counts_as_strings(gemini_client: genai.Client, emulator: Emulator) -> None:
    emulator.configure(stage_seconds=100)
    job = gemini_client.batches.create(model="gemini-2.5-flash", src=_INLINE)  # type: ignore[arg-type]
    assert job.name
    headers = {"x-goog-api-key": "k"}
    raw = httpx2.get(f"{emulator.url}/v1beta/{job.name}", headers=headers).json()
    assert raw["metadata"]["state"] == "BATCH_STATE_PENDING"
    assert raw["metadata"]["batchStats"] == {"requestCount": "3", "pendingRequestCount": "3"}
    assert "done" not in raw
    emulator.advance_clock(100)
    assert gemini_client.batches.get(name=job.name).state == JobState.JOB_STATE_RUNNING
    emulator.advance_clock(100)
    raw = httpx2.get(f"{emulator.url}/v1beta/{job.name}", params={"key": "k"}).json()
    assert raw["metadata"]["state"] == "BATCH_STATE_SUCCEEDED" and raw["done"] is True
    assert raw["metadata"]["batchStats"] == {"requestCount": "3", "successfulRequestCount": "3"}


def test_cancel_delete_and_list(gemini_client: genai.Client) -> None:
    names = [gemini_client.batches.create(model="gemini-2.5-flash", src=_INLINE).name for _ in range(5)]  # type: ignore[arg-type]
    assert all(names)
    gemini_client.batches.cancel(name=names[0])  # type: ignore[arg-type]
    assert gemini_client.batches.get(name=names[0]).state == JobState.JOB_STATE_CANCELLED  # type: ignore[arg-type]
    gemini_client.batches.delete(name=names[0])  # type: ignore[arg-type]
    with pytest.raises(errors.ClientError) as raised:
        gemini_client.batches.get(name=names[0])  # type: ignore[arg-type]
    assert raised.value.code == 404 and raised.value.status == "NOT_FOUND"
    listed = [job.name for job in gemini_client.batches.list(config={"page_size": 2})]
    assert listed == names[:0:-1]


def test_fail_expire_and_request_errors(gemini_client: genai.Client, emulator: Emulator) -> None:
    emulator.add_fault(BatchFault(outcome="fail", provider="gemini", message="Input file is invalid."))
    job = gemini_client.batches.create(model="gemini-2.5-flash", src=_upload(gemini_client, 2))
    assert gemini_client.batches.get(name=job.name).state == JobState.JOB_STATE_FAILED  # type: ignore[arg-type]
    raw = httpx2.get(f"{emulator.url}/v1beta/{job.name}", headers={"x-goog-api-key": "k"}).json()
    assert raw["done"] is True and raw["error"] == {"code": 3, "message": "Input file is invalid."}

    emulator.add_fault(BatchFault(outcome="expire", done_fraction=0.5))
    job = gemini_client.batches.create(model="gemini-2.5-flash", src=_upload(gemini_client, 4))
    expired = gemini_client.batches.get(name=job.name)  # type: ignore[arg-type]
    assert expired.state == JobState.JOB_STATE_EXPIRED and expired.dest and expired.dest.file_name
    assert len(gemini_client.files.download(file=expired.dest.file_name).splitlines()) == 2

    emulator.fail_requests(["k1"], provider="gemini", kind="rate_limit")
    emulator.fail_requests(["1"], provider="gemini")
    job = gemini_client.batches.create(model="gemini-2.5-flash", src=_upload(gemini_client, 3))
    done = gemini_client.batches.get(name=job.name)  # type: ignore[arg-type]
    assert done.dest and done.dest.file_name
    lines = {
        json.loads(line)["key"]: json.loads(line)
        for line in gemini_client.files.download(file=done.dest.file_name).splitlines()
    }
    assert lines["k1"] == {"key": "k1", "error": {"code": 8, "message": lines["k1"]["error"]["message"]}}
    assert "response" in lines["k0"]
    inline = gemini_client.batches.create(model="gemini-2.5-flash", src=_INLINE)  # type: ignore[arg-type]
    done = gemini_client.batches.get(name=inline.name)  # type: ignore[arg-type]
    assert done.dest and done.dest.inlined_responses
    assert done.dest.inlined_responses[1].error is not None and done.dest.inlined_responses[1].response is None
    raw = httpx2.get(f"{emulator.url}/v1beta/{inline.name}", headers={"x-goog-api-key": "k"}).json()
    assert raw["metadata"]["batchStats"] == {
        "requestCount": "3",
        "successfulRequestCount": "2",
        "failedRequestCount": "1",
    }


def test_limits_and_auth(gemini_client: genai.Client, emulator: Emulator) -> None:
    emulator.configure(limits=Limits(gemini_max_inline_bytes=200))
    with pytest.raises(errors.ClientError) as raised:
        gemini_client.batches.create(model="gemini-2.5-flash", src=_INLINE * 5)  # type: ignore[arg-type]
    assert raised.value.code == 400 and raised.value.status == "INVALID_ARGUMENT"
    answer = httpx2.get(f"{emulator.url}/v1beta/batches")
    assert answer.status_code == 401 and answer.json()["error"]["status"] == "UNAUTHENTICATED"
    with pytest.raises(errors.ClientError):
        gemini_client.batches.create(model="gemini-2.5-flash", src="files/missing")


def test_files_api(gemini_client: genai.Client) -> None:
    names = [_upload(gemini_client, 1) for _ in range(3)]
    assert [f.name for f in gemini_client.files.list()] == names[::-1]
    assert gemini_client.files.get(name=names[0]).display_name == "in"
    gemini_client.files.delete(name=names[0])
    with pytest.raises(errors.ClientError):
        gemini_client.files.get(name=names[0])


def test_tools_and_schema(gemini_client: genai.Client) -> None:
    declaration = {
        "name": "lookup",
        "parameters": {
            "type": "OBJECT",
            "properties": {"q": {"type": "STRING"}, "n": {"type": "INTEGER", "nullable": True}},
            "required": ["q", "n"],
        },
    }
    src = [
        {
            "contents": [{"parts": [{"text": "hi"}], "role": "user"}],
            "config": {
                "tools": [{"function_declarations": [declaration]}],
                "tool_config": {"function_calling_config": {"mode": "ANY"}},
            },
        },
        {
            "contents": [{"parts": [{"text": "hi"}], "role": "user"}],
            "config": {
                "response_mime_type": "application/json",
                "response_json_schema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        },
    ]
    job = gemini_client.batches.create(model="gemini-2.5-flash", src=src)  # type: ignore[arg-type]
    done = gemini_client.batches.get(name=job.name)  # type: ignore[arg-type]
    assert done.dest and done.dest.inlined_responses
    first, second = (r.response for r in done.dest.inlined_responses)
    assert first is not None and first.function_calls
    assert first.function_calls[0].name == "lookup" and first.function_calls[0].args == {"q": "example q", "n": 1}
    assert second is not None and json.loads(second.text or "") == {"city": "example city"}

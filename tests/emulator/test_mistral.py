"""Mistral's batch API as the official mistralai SDK sees it against the emulator (base URL `<emulator>/mistral`)."""

from __future__ import annotations

from typing import Any

import httpx2
import orjson
import pytest
from mistralai.client import Mistral
from mistralai.client.errors import MistralError
from test_shapes import assert_same_shape, recorded

from batchline.emulator import BatchFault, Emulator, Limits, RequestFault


def mistral_lines(count: int, prefix: str = "r") -> bytes:
    lines = [
        orjson.dumps({"custom_id": f"{prefix}{i}", "body": {"messages": [{"role": "user", "content": f"q{i}"}]}})
        for i in range(count)
    ]
    return b"\n".join(lines) + b"\n"


def _lines(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def _download(client: Mistral, file_id: str) -> bytes:
    return client.files.download(file_id=file_id).read()


def _create(client: Mistral, data: bytes, **kwargs: Any) -> Any:
    uploaded = client.files.upload(file={"file_name": "input.jsonl", "content": data}, purpose="batch")
    return client.batch.jobs.create(
        input_files=[uploaded.id], model="mistral-small-latest", endpoint="/v1/chat/completions", **kwargs
    )


def test_full_lifecycle(mistral_client: Mistral, emulator: Emulator) -> None:
    data = mistral_lines(12)
    uploaded = mistral_client.files.upload(file={"file_name": "input.jsonl", "content": data}, purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.size_bytes == len(data)
    created = mistral_client.batch.jobs.create(
        input_files=[uploaded.id],
        model="mistral-small-latest",
        endpoint="/v1/chat/completions",
        metadata={"run": "t1"},
    )
    assert created.status == "QUEUED" and created.total_requests == 12
    job = mistral_client.batch.jobs.get(job_id=created.id)
    assert job.status == "SUCCESS" and job.metadata == {"run": "t1"} and job.model == "mistral-small-latest"
    assert (job.succeeded_requests, job.failed_requests) == (12, 0)
    assert job.output_file and not job.error_file
    lines = _lines(_download(mistral_client, job.output_file))
    assert sorted(line["custom_id"] for line in lines) == sorted(f"r{i}" for i in range(12))
    for line in lines:
        body = line["response"]["body"]
        assert line["response"]["status_code"] == 200 and body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["content"] == f"Mock response for {line['custom_id']}"
        assert body["model"] == "mistral-small-latest"
    assert emulator.stats()["mistral"] == {"batches_created": 1, "files_created": 1, "requests_received": 12}


def test_list_pages_and_cancel(mistral_client: Mistral, emulator: Emulator) -> None:
    emulator.configure(stage_seconds=60)
    ids = [_create(mistral_client, mistral_lines(2), metadata={"n": str(n)}).id for n in range(3)]
    listed = mistral_client.batch.jobs.list(page=0, page_size=2)
    assert listed.total == 3 and [j.id for j in listed.data or []] == ids[::-1][:2]  # newest first
    cancelled = mistral_client.batch.jobs.cancel(job_id=ids[0])
    assert cancelled.status == "CANCELLATION_REQUESTED"
    emulator.advance_clock(61)
    assert mistral_client.batch.jobs.get(job_id=ids[0]).status == "CANCELLED"


def test_request_errors_go_to_the_error_file(mistral_client: Mistral, emulator: Emulator) -> None:
    emulator.add_fault(RequestFault(custom_ids=["r1"], provider="mistral", kind="rate_limit"))
    job = mistral_client.batch.jobs.get(job_id=_create(mistral_client, mistral_lines(3)).id)
    assert (job.succeeded_requests, job.failed_requests) == (2, 1) and job.error_file
    (line,) = _lines(_download(mistral_client, job.error_file))
    assert line["custom_id"] == "r1" and line["response"]["status_code"] == 429
    assert line["response"]["body"]["object"] == "error" and line["response"]["body"]["code"] == "1300"


def test_bad_input_and_faults_fail_the_job(mistral_client: Mistral, emulator: Emulator) -> None:
    bad = mistral_client.batch.jobs.get(job_id=_create(mistral_client, b'{"custom_id": "a"}\n').id)
    assert bad.status == "FAILED" and bad.errors and "body" in bad.errors[0].message and not bad.output_file
    emulator.add_fault(BatchFault(outcome="fail", provider="mistral", message="Quota exceeded."))
    failed = mistral_client.batch.jobs.get(job_id=_create(mistral_client, mistral_lines(2)).id)
    assert failed.status == "FAILED" and [e.message for e in failed.errors] == ["Quota exceeded."]
    emulator.add_fault(BatchFault(outcome="expire", provider="mistral", done_fraction=0.5))
    expired = mistral_client.batch.jobs.get(job_id=_create(mistral_client, mistral_lines(4)).id)
    assert expired.status == "TIMEOUT_EXCEEDED" and expired.succeeded_requests == 2
    assert len(_lines(_download(mistral_client, expired.output_file or ""))) == 2


def test_limits_and_errors_in_mistrals_shapes(mistral_client: Mistral, emulator: Emulator) -> None:
    emulator.configure(limits=Limits(mistral_max_requests=3))
    too_many = mistral_client.batch.jobs.get(job_id=_create(mistral_client, mistral_lines(4)).id)
    assert too_many.status == "FAILED" and "more than 3 requests" in too_many.errors[0].message
    with pytest.raises(MistralError) as missing:
        mistral_client.batch.jobs.get(job_id="no-such-job")
    assert missing.value.status_code == 404 and orjson.loads(missing.value.body)["object"] == "error"
    denied = httpx2.get(emulator.mistral_base_url + "/v1/batch/jobs")  # no key
    assert denied.status_code == 401 and denied.json()["message"] == "Unauthorized"


def test_jobs_and_result_lines_have_the_documented_shapes(mistral_client: Mistral, emulator: Emulator) -> None:
    """Against tests/fixtures/recorded/mistral: written from Mistral's documented schemas (no recording exists)."""
    emulator.add_fault(RequestFault(custom_ids=["r1"], provider="mistral", kind="rate_limit"))
    job = _create(mistral_client, mistral_lines(2), metadata={"batchline_job": "j1", "batchline_part": "0"})
    headers = {"authorization": "Bearer k"}
    answer = httpx2.get(f"{emulator.mistral_base_url}/v1/batch/jobs/{job.id}", headers=headers).json()
    assert_same_shape(recorded("mistral/batch_job_status_sequence_DOCS_SHAPE.json")[2], answer)
    line = _lines(_download(mistral_client, answer["output_file"]))[0]
    assert_same_shape(recorded("mistral/batch_output_DOCS_SHAPE.jsonl")[0], line, extra=frozenset({"prefix"}))
    (error,) = _lines(_download(mistral_client, answer["error_file"]))
    assert_same_shape(recorded("mistral/batch_error_DOCS_SHAPE.jsonl")[0], error)
    uploaded = httpx2.get(f"{emulator.mistral_base_url}/v1/files/{answer['input_files'][0]}", headers=headers).json()
    assert_same_shape(recorded("mistral/file_upload_response_DOCS_SHAPE.json"), uploaded)


def test_a_job_times_out_after_its_own_timeout_hours(mistral_client: Mistral, emulator: Emulator) -> None:
    emulator.configure(stage_seconds=10_000)
    job = _create(mistral_client, mistral_lines(2), timeout_hours=1)
    emulator.advance_clock(3_599)
    assert mistral_client.batch.jobs.get(job_id=job.id).status == "QUEUED"
    emulator.advance_clock(2)
    assert mistral_client.batch.jobs.get(job_id=job.id).status == "TIMEOUT_EXCEEDED"

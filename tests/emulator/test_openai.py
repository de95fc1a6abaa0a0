"""The OpenAI Batch API as the official SDK sees it against the emulator."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest
from emulator_helpers import openai_lines

from batchline.emulator import BatchFault, Emulator, Limits


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line]


def _run(client: openai.OpenAI, data: bytes, endpoint: str = "/v1/chat/completions", **kwargs: Any) -> Any:
    file = client.files.create(file=("input.jsonl", data), purpose="batch")
    return client.batches.create(input_file_id=file.id, endpoint=endpoint, completion_window="24h", **kwargs)  # type: ignore[arg-type]


def test_full_lifecycle(openai_client: openai.OpenAI, emulator: Emulator) -> None:
    data = openai_lines(20)
    file = openai_client.files.create(file=("input.jsonl", data), purpose="batch")
    assert (file.object, file.purpose, file.bytes, file.status) == ("file", "batch", len(data), "processed")
    created = openai_client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"run": "t1"}
    )
    assert created.status == "validating"
    assert created.request_counts is not None and created.request_counts.total == 0
    batch = openai_client.batches.retrieve(created.id)
    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (20, 20, 0)
    assert batch.metadata == {"run": "t1"} and batch.model == "gpt-4o-mini"
    assert batch.output_file_id and batch.error_file_id is None
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at
    lines = _lines(openai_client.files.content(batch.output_file_id).text)
    ids = [line["custom_id"] for line in lines]
    assert sorted(ids) == sorted(f"r{i}" for i in range(20))
    assert ids != [f"r{i}" for i in range(20)], "result lines come shuffled"
    for line in lines:
        assert line["error"] is None and line["response"]["status_code"] == 200
        body = line["response"]["body"]
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["content"] == f"Mock response for {line['custom_id']}"
        assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    output = openai_client.files.retrieve(batch.output_file_id)
    assert output.purpose == "batch_output" and output.bytes == len(openai_client.files.content(output.id).content)
    assert emulator.stats()["openai"] == {"batches_created": 1, "files_created": 1, "requests_received": 20}
    assert emulator.received()["openai"] == [f"r{i}" for i in range(20)]  # as sent, once each


def test_output_is_deterministic(openai_client: openai.OpenAI) -> None:
    first = openai_client.batches.retrieve(_run(openai_client, openai_lines(10)).id)
    second = openai_client.batches.retrieve(_run(openai_client, openai_lines(10)).id)
    assert first.output_file_id and second.output_file_id
    again = openai_client.files.content(first.output_file_id).content
    assert openai_client.files.content(first.output_file_id).content == again
    bodies = {
        line["custom_id"]: line["response"]["body"]["choices"]
        for line in _lines(openai_client.files.content(second.output_file_id).text)
    }
    assert bodies == {line["custom_id"]: line["response"]["body"]["choices"] for line in _lines(again.decode())}


def test_cancel_and_list_pagination(openai_client: openai.OpenAI) -> None:
    ids = [_run(openai_client, openai_lines(2)).id for _ in range(5)]
    cancelled = openai_client.batches.cancel(ids[0])
    assert cancelled.status == "cancelling" and cancelled.cancelling_at
    final = openai_client.batches.retrieve(ids[0])
    assert final.status == "cancelled" and final.cancelled_at and final.output_file_id is None
    assert final.error_file_id
    errors = _lines(openai_client.files.content(final.error_file_id).text)
    assert {e["error"]["code"] for e in errors} == {"batch_cancelled"} and len(errors) == 2
    with pytest.raises(openai.BadRequestError):
        openai_client.batches.cancel(ids[1]) if openai_client.batches.retrieve(ids[1]) else None
    page = openai_client.batches.list(limit=2)
    assert [b.id for b in page.data] == ids[::-1][:2] and page.has_more
    assert [b.id for b in openai_client.batches.list(limit=2)] == ids[::-1]  # auto-paging with `after`
    last = openai_client.batches.list(limit=2, after=ids[1])
    assert [b.id for b in last.data] == [ids[0]] and not last.has_more


def test_cancel_keeps_partial_results(openai_client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.configure(stage_seconds=100)
    batch = _run(openai_client, openai_lines(10))
    emulator.advance_clock(150)  # validating 100 s, then half of in_progress
    running = openai_client.batches.retrieve(batch.id)
    assert running.status == "in_progress" and running.request_counts is not None
    assert (running.request_counts.total, running.request_counts.completed) == (10, 5)
    openai_client.batches.cancel(batch.id)
    emulator.advance_clock(100)
    final = openai_client.batches.retrieve(batch.id)
    assert final.status == "cancelled" and final.output_file_id and final.error_file_id
    assert len(_lines(openai_client.files.content(final.output_file_id).text)) == 5
    assert len(_lines(openai_client.files.content(final.error_file_id).text)) == 5


def test_timed_stages(openai_client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.configure(stage_seconds=60)
    batch = _run(openai_client, openai_lines(4))
    seen = [openai_client.batches.retrieve(batch.id).status]
    for _ in range(3):
        emulator.advance_clock(60)
        seen.append(openai_client.batches.retrieve(batch.id).status)
    assert seen == ["validating", "in_progress", "finalizing", "completed"]


def test_window_expiry_reports_unrun_requests(openai_client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.configure(stage_seconds=20 * 3600)  # still in_progress when the 24 h window closes
    batch = _run(openai_client, openai_lines(4))
    emulator.advance_clock(30 * 3600)
    final = openai_client.batches.retrieve(batch.id)
    assert final.status == "expired" and final.expired_at and final.error_file_id
    errors = _lines(openai_client.files.content(final.error_file_id).text)
    assert {e["error"]["code"] for e in errors} == {"batch_expired"}


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (openai_lines(2) + openai_lines(1), "duplicate_custom_id"),
        (openai_lines(2, endpoint="/v1/responses"), "url_mismatch"),
        (
            openai_lines(1) + openai_lines(2, model="gpt-4o").replace(b'"r0"', b'"x0"').replace(b'"r1"', b'"x1"'),
            "model_mismatch",
        ),
        (b"{not json}\n", "invalid_json_line"),
        (b'{"method": "POST", "url": "/v1/chat/completions", "body": {"model": "m"}}\n', "missing_required_parameter"),
        (b"\n", "empty_file"),
    ],
)
def test_bad_input_fails_the_batch(openai_client: openai.OpenAI, data: bytes, code: str) -> None:
    created = _run(openai_client, data)
    assert created.status == "validating"
    batch = openai_client.batches.retrieve(created.id)
    assert batch.status == "failed" and batch.failed_at and batch.errors and batch.errors.data
    assert code in {error.code for error in batch.errors.data}
    assert batch.output_file_id is None and batch.error_file_id is None
    assert batch.request_counts is not None and batch.request_counts.total == 0


def test_limits(openai_client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.configure(limits=Limits(openai_max_requests=3))
    too_many = openai_client.batches.retrieve(_run(openai_client, openai_lines(4)).id)
    assert too_many.errors and too_many.errors.data and too_many.errors.data[0].code == "too_many_tasks"
    emulator.configure(limits=Limits(openai_max_bytes=100))
    too_big = openai_client.batches.retrieve(_run(openai_client, openai_lines(2)).id)
    assert too_big.errors and too_big.errors.data and too_big.errors.data[0].code == "file_too_large"


def test_token_limit_fault(openai_client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.add_fault(BatchFault(outcome="fail", provider="openai", code="token_limit_exceeded"))
    batch = openai_client.batches.retrieve(_run(openai_client, openai_lines(3)).id)
    assert batch.status == "failed" and batch.errors and batch.errors.data
    assert batch.errors.data[0].code == "token_limit_exceeded"
    assert openai_client.batches.retrieve(_run(openai_client, openai_lines(3)).id).status == "completed"


def test_create_errors(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        openai_client.batches.create(input_file_id="file-missing", endpoint="/v1/responses", completion_window="24h")
    file = openai_client.files.create(file=("input.jsonl", openai_lines(1)), purpose="batch")
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.batches.create(
            input_file_id=file.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={f"k{i}": "v" for i in range(17)},
        )
    assert raised.value.param == "metadata"
    with pytest.raises(openai.NotFoundError):
        openai_client.batches.retrieve("batch_missing")


def test_missing_api_key_is_401(emulator: Emulator) -> None:
    answer = httpx2.get(emulator.openai_base_url + "/batches")
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert httpx2.get(emulator.openai_base_url + "/batches", headers={"authorization": "Bearer x"}).status_code == 200


def test_files_list_and_delete(openai_client: openai.OpenAI) -> None:
    ids = [openai_client.files.create(file=(f"f{i}.jsonl", b"{}\n"), purpose="batch").id for i in range(3)]
    assert [f.id for f in openai_client.files.list(purpose="batch")] == ids[::-1]
    deleted = openai_client.files.delete(ids[0])
    assert deleted.deleted and deleted.id == ids[0]
    with pytest.raises(openai.NotFoundError):
        openai_client.files.retrieve(ids[0])


def test_request_errors_go_to_the_error_file(openai_client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.fail_requests(["r1"], provider="openai")
    emulator.fail_requests(pattern=r"^r[34]$", kind="rate_limit")
    batch = openai_client.batches.retrieve(_run(openai_client, openai_lines(6)).id)
    assert batch.status == "completed" and batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (3, 3)
    assert batch.output_file_id and batch.error_file_id
    errors = {e["custom_id"]: e for e in _lines(openai_client.files.content(batch.error_file_id).text)}
    assert set(errors) == {"r1", "r3", "r4"}
    assert errors["r1"]["error"] is None and errors["r1"]["response"]["status_code"] == 500
    assert errors["r1"]["response"]["body"]["error"]["type"] == "server_error"
    assert errors["r3"]["response"]["status_code"] == 429
    assert {line["custom_id"] for line in _lines(openai_client.files.content(batch.output_file_id).text)} == {
        "r0",
        "r2",
        "r5",
    }


def test_only_errors_means_no_output_file(openai_client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.fail_requests(pattern=".")
    batch = openai_client.batches.retrieve(_run(openai_client, openai_lines(2)).id)
    assert batch.status == "completed" and batch.output_file_id is None and batch.error_file_id


def test_expired_with_partial_results(openai_client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.add_fault(BatchFault(outcome="expire", done_fraction=0.5))
    batch = openai_client.batches.retrieve(_run(openai_client, openai_lines(8)).id)
    assert batch.status == "expired" and batch.output_file_id and batch.error_file_id
    done = _lines(openai_client.files.content(batch.output_file_id).text)
    unrun = _lines(openai_client.files.content(batch.error_file_id).text)
    assert len(done) == 4 and len(unrun) == 4
    assert all(line["response"] is None and line["error"]["code"] == "batch_expired" for line in unrun)
    assert {line["custom_id"] for line in done + unrun} == {f"r{i}" for i in range(8)}


def test_cancelled_by_fault(openai_client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.add_fault(BatchFault(outcome="cancel", done_fraction=0.25))
    batch = openai_client.batches.retrieve(_run(openai_client, openai_lines(8)).id)
    assert batch.status == "cancelled" and batch.output_file_id and batch.error_file_id
    assert len(_lines(openai_client.files.content(batch.output_file_id).text)) == 2


def test_responses_endpoint_with_tools_and_schema(openai_client: openai.OpenAI) -> None:
    tool = {
        "type": "function",
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    }
    schema = {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": 3},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["score", "tags"],
        "additionalProperties": False,
    }
    lines = [
        {"custom_id": "forced", "body": {"input": "hi", "tools": [tool], "tool_choice": "required"}},
        {"custom_id": "asked", "body": {"input": "please use lookup", "tools": [tool]}},
        {"custom_id": "free", "body": {"input": "hi", "tools": [tool]}},
        {
            "custom_id": "json",
            "body": {
                "input": "hi",
                "text": {"format": {"type": "json_schema", "name": "out", "schema": schema, "strict": True}},
            },
        },
    ]
    data = "\n".join(
        json.dumps(
            {
                "custom_id": ln["custom_id"],
                "method": "POST",
                "url": "/v1/responses",
                "body": {"model": "gpt-4.1", **ln["body"]},
            }
        )
        for ln in lines
    ).encode()
    batch = openai_client.batches.retrieve(_run(openai_client, data, endpoint="/v1/responses").id)
    assert batch.output_file_id
    out = {
        ln["custom_id"]: ln["response"]["body"] for ln in _lines(openai_client.files.content(batch.output_file_id).text)
    }
    for custom_id in ("forced", "asked"):
        call = out[custom_id]["output"][0]
        assert call["type"] == "function_call" and call["name"] == "lookup"
        assert json.loads(call["arguments"]) == {"q": "example q"}
    assert out["free"]["output"][0]["content"][0]["text"] == "Mock response for free"
    value = json.loads(out["json"]["output"][0]["content"][0]["text"])
    assert isinstance(value["score"], int) and value["score"] >= 3 and isinstance(value["tags"], list)
    assert all(body["object"] == "response" and body["status"] == "completed" for body in out.values())


def test_chat_tool_choice_and_embeddings(openai_client: openai.OpenAI) -> None:
    tool = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
    data = openai_lines(2, tools=[tool], tool_choice={"type": "function", "function": {"name": "get_time"}})
    batch = openai_client.batches.retrieve(_run(openai_client, data).id)
    assert batch.output_file_id
    for line in _lines(openai_client.files.content(batch.output_file_id).text):
        choice = line["response"]["body"]["choices"][0]
        assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
        assert choice["message"]["tool_calls"][0]["function"] == {"name": "get_time", "arguments": "{}"}

    data = openai_lines(3, endpoint="/v1/embeddings", model="text-embedding-3-small", dimensions=8)
    batch = openai_client.batches.retrieve(_run(openai_client, data, endpoint="/v1/embeddings").id)
    assert batch.output_file_id
    first = {
        ln["custom_id"]: ln["response"]["body"] for ln in _lines(openai_client.files.content(batch.output_file_id).text)
    }
    again = openai_client.batches.retrieve(_run(openai_client, data, endpoint="/v1/embeddings").id)
    assert again.output_file_id
    second = {
        ln["custom_id"]: ln["response"]["body"] for ln in _lines(openai_client.files.content(again.output_file_id).text)
    }
    for custom_id, body in first.items():
        vector = body["data"][0]["embedding"]
        assert body["object"] == "list" and len(vector) == 8
        assert abs(sum(v * v for v in vector) - 1) < 1e-6
        assert vector == second[custom_id]["data"][0]["embedding"]
    assert first["r0"]["data"][0]["embedding"] != first["r1"]["data"][0]["embedding"]


def test_response_template(openai_client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.configure(response_template="[{model}] answer to {custom_id}")
    batch = openai_client.batches.retrieve(_run(openai_client, openai_lines(1)).id)
    assert batch.output_file_id
    line = _lines(openai_client.files.content(batch.output_file_id).text)[0]
    assert line["response"]["body"]["choices"][0]["message"]["content"] == "[gpt-4o-mini] answer to r0"

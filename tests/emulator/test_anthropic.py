"""Anthropic Message Batches as the official SDK sees them against the emulator."""

from __future__ import annotations

import anthropic
import httpx2
import pytest
from emulator_helpers import anthropic_requests

from batchline.emulator import BatchFault, Emulator, Limits


def test_full_lifecycle(anthropic_client: anthropic.Anthropic, emulator: Emulator) -> None:
    requests = anthropic_requests(6)
    requests[3]["params"]["model"] = "claude-haiku-4-5"  # requests may name different models
    created = anthropic_client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert created.processing_status == "in_progress" and created.results_url is None
    assert created.request_counts.processing == 6 and created.request_counts.succeeded == 0
    batch = anthropic_client.messages.batches.retrieve(created.id)
    assert batch.processing_status == "ended" and batch.ended_at is not None
    assert batch.results_url == f"{emulator.url}/v1/messages/batches/{batch.id}/results"
    assert (batch.request_counts.processing, batch.request_counts.succeeded) == (0, 6)
    results = list(anthropic_client.messages.batches.results(batch.id))
    assert [r.custom_id for r in results] != [f"a{i}" for i in range(6)], "results come shuffled"
    by_id = {r.custom_id: r.result for r in results}
    assert set(by_id) == {f"a{i}" for i in range(6)}
    for custom_id, result in by_id.items():
        assert result.type == "succeeded"
        message = result.message
        assert message.content[0].type == "text" and message.content[0].text == f"Mock response for {custom_id}"
        assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
    assert by_id["a3"].type == "succeeded" and by_id["a3"].message.model == "claude-haiku-4-5"
    assert by_id["a0"].type == "succeeded" and by_id["a0"].message.model == "claude-sonnet-4-5"
    assert emulator.stats()["anthropic"]["batches_created"] == 1


def test_beta_client_and_request_id(anthropic_client: anthropic.Anthropic) -> None:
    raw = anthropic_client.beta.messages.batches.with_raw_response.create(requests=anthropic_requests(1))  # type: ignore[arg-type]
    assert raw.headers.get("request-id")
    batch = raw.parse()
    assert anthropic_client.beta.messages.batches.retrieve(batch.id).processing_status == "ended"


def test_cancel_delete_and_list(anthropic_client: anthropic.Anthropic, emulator: Emulator) -> None:
    ids = [anthropic_client.messages.batches.create(requests=anthropic_requests(3)).id for _ in range(5)]  # type: ignore[arg-type]
    cancelling = anthropic_client.messages.batches.cancel(ids[0])
    assert cancelling.processing_status == "canceling" and cancelling.cancel_initiated_at is not None
    assert cancelling.request_counts.processing == 3 and cancelling.request_counts.canceled == 0
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client.messages.batches.delete(ids[1])  # still in progress
    ended = anthropic_client.messages.batches.retrieve(ids[0])
    assert ended.processing_status == "ended" and ended.request_counts.canceled == 3
    assert {r.result.type for r in anthropic_client.messages.batches.results(ids[0])} == {"canceled"}
    deleted = anthropic_client.messages.batches.delete(ids[0])
    assert deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.messages.batches.retrieve(ids[0])
    newest_first = ids[:0:-1]
    page = anthropic_client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == newest_first[:2] and page.has_more
    assert page.first_id == newest_first[0] and page.last_id == newest_first[1]
    assert [b.id for b in anthropic_client.messages.batches.list(limit=2)] == newest_first
    after = anthropic_client.messages.batches.list(limit=10, after_id=newest_first[1])
    assert [b.id for b in after.data] == newest_first[2:]
    before = anthropic_client.messages.batches.list(limit=1, before_id=newest_first[2])
    assert [b.id for b in before.data] == [newest_first[1]] and before.has_more


def test_partial_cancel_with_timing(anthropic_client: anthropic.Anthropic, emulator: Emulator) -> None:
    emulator.configure(stage_seconds=100)
    batch = anthropic_client.messages.batches.create(requests=anthropic_requests(10))  # type: ignore[arg-type]
    emulator.advance_clock(40)
    running = anthropic_client.messages.batches.retrieve(batch.id)
    assert running.processing_status == "in_progress" and running.request_counts.processing == 10
    assert running.results_url is None
    anthropic_client.messages.batches.cancel(batch.id)
    emulator.advance_clock(100)
    ended = anthropic_client.messages.batches.retrieve(batch.id)
    counts = ended.request_counts
    assert (counts.succeeded, counts.canceled, counts.processing) == (4, 6, 0)


@pytest.mark.parametrize(
    ("requests", "status"),
    [
        ([{"custom_id": "bad id!", "params": {"model": "m", "max_tokens": 1, "messages": []}}], 400),
        (anthropic_requests(2) + anthropic_requests(1), 400),
        ([{"custom_id": "x", "params": {"model": "m", "messages": []}}], 400),
        ([], 400),
    ],
)
def test_validation(anthropic_client: anthropic.Anthropic, requests: list[dict[str, object]], status: int) -> None:
    with pytest.raises(anthropic.APIStatusError) as raised:
        anthropic_client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert raised.value.status_code == status
    assert isinstance(raised.value.body, dict) and raised.value.body["error"]["type"] == "invalid_request_error"


def test_limits(anthropic_client: anthropic.Anthropic, emulator: Emulator) -> None:
    emulator.configure(limits=Limits(anthropic_max_requests=2, anthropic_max_bytes=10_000))
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client.messages.batches.create(requests=anthropic_requests(3))  # type: ignore[arg-type]
    with pytest.raises(anthropic.APIStatusError) as raised:
        anthropic_client.messages.batches.create(requests=anthropic_requests(2, system="x" * 20_000))  # type: ignore[arg-type]
    assert raised.value.status_code == 413
    assert isinstance(raised.value.body, dict) and raised.value.body["error"]["type"] == "request_too_large"


def test_missing_api_key_is_401(emulator: Emulator) -> None:
    answer = httpx2.get(emulator.url + "/v1/messages/batches")
    assert answer.status_code == 401
    assert answer.json()["type"] == "error" and answer.json()["error"]["type"] == "authentication_error"
    assert httpx2.get(emulator.url + "/v1/messages/batches", headers={"x-api-key": "k"}).status_code == 200


def test_errored_expired_and_fail_faults(anthropic_client: anthropic.Anthropic, emulator: Emulator) -> None:
    emulator.fail_requests(["a1"], provider="anthropic", kind="overloaded")
    batch = anthropic_client.messages.batches.create(requests=anthropic_requests(3))  # type: ignore[arg-type]
    ended = anthropic_client.messages.batches.retrieve(batch.id)
    assert (ended.request_counts.succeeded, ended.request_counts.errored) == (2, 1)
    results = {r.custom_id: r.result for r in anthropic_client.messages.batches.results(batch.id)}
    errored = results["a1"]
    assert errored.type == "errored"
    assert errored.error.type == "error" and errored.error.error.type == "overloaded_error"

    emulator.add_fault(BatchFault(outcome="expire", done_fraction=0.5))
    batch = anthropic_client.messages.batches.create(requests=anthropic_requests(4))  # type: ignore[arg-type]
    ended = anthropic_client.messages.batches.retrieve(batch.id)
    assert ended.request_counts.expired + ended.request_counts.succeeded + ended.request_counts.errored == 4
    assert ended.request_counts.expired == 2
    types = sorted(r.result.type for r in anthropic_client.messages.batches.results(batch.id))
    assert types.count("expired") == 2

    emulator.add_fault(BatchFault(outcome="fail", message="Too many tokens in this batch."))
    with pytest.raises(anthropic.BadRequestError, match="Too many tokens"):
        anthropic_client.messages.batches.create(requests=anthropic_requests(1))  # type: ignore[arg-type]


def test_tools_and_output_schema(anthropic_client: anthropic.Anthropic) -> None:
    tool = {
        "name": "get_weather",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    }
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}, "note": {"type": ["string", "null"]}},
        "required": ["ok", "note"],
    }
    requests = [
        {
            "custom_id": "forced",
            "params": {
                "model": "m",
                "max_tokens": 9,
                "tools": [tool],
                "tool_choice": {"type": "tool", "name": "get_weather"},
                "messages": [{"role": "user", "content": "hi"}],
            },
        },
        {
            "custom_id": "asked",
            "params": {
                "model": "m",
                "max_tokens": 9,
                "tools": [tool],
                "messages": [{"role": "user", "content": "call get_weather now"}],
            },
        },
        {
            "custom_id": "schema",
            "params": {
                "model": "m",
                "max_tokens": 9,
                "output_format": {"type": "json_schema", "schema": schema},
                "messages": [{"role": "user", "content": "hi"}],
            },
        },
    ]
    batch = anthropic_client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    anthropic_client.messages.batches.retrieve(batch.id)
    results = {r.custom_id: r.result for r in anthropic_client.messages.batches.results(batch.id)}
    for custom_id in ("forced", "asked"):
        result = results[custom_id]
        assert result.type == "succeeded" and result.message.stop_reason == "tool_use"
        block = result.message.content[0]
        assert block.type == "tool_use" and block.name == "get_weather"
        assert block.input == {"city": "example city", "unit": "c"}
    result = results["schema"]
    assert result.type == "succeeded" and result.message.content[0].type == "text"
    assert result.message.content[0].text == '{"ok":true,"note":"example note"}'

"""The Anthropic adapter against the emulator: mixed models, custom_ids it refuses, structured output, faults."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx2
import orjson
import pytest
from pydantic_ai import ToolCallPart
from pydantic_ai.models import ModelRequestParameters

from batchline import (
    BatchError,
    BatchInputError,
    BatchStatus,
    batch_cancel_sync,
    batch_create_sync,
    batch_results_sync,
    batch_wait_sync,
    model_request_batch_sync,
    worker,
)
from batchline.config import Settings
from batchline.emulator import BatchFault, Emulator, HttpFault
from batchline.errors import ProviderRejected
from batchline.providers.anthropic import AnthropicProvider
from batchline.providers.anthropic.transport import client_config
from batchline.providers.anthropic.wire import safe_id
from batchline.providers.http import ProviderHTTP

from .conftest import WorkerProcess, make_real_setup
from .openai_anthropic_helpers import (
    CALCULATE,
    FAKE_ANTHROPIC_KEY,
    City,
    Recording,
    ask,
    context,
    fresh_runtime,
    output_modes,
    provider_env,
    record_worker_http,
)
from .waiting import wait_for

MODEL = "anthropic:claude-sonnet-4-5"
ALLOWED_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


@pytest.fixture
def anthropic_env(emulator: Emulator, embedded: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """The embedded default with the worker's ANTHROPIC_* variables pointing at the emulator."""
    for name, value in provider_env(emulator).items():
        monkeypatch.setenv(name, value)
    fresh_runtime()
    yield emulator
    fresh_runtime()


def batches_created(emulator: Emulator) -> int:
    return int(emulator.stats()["anthropic"]["batches_created"])


def sent_requests(recording: Recording) -> list[dict[str, object]]:
    """The `requests` array of every create call, in order."""
    return [
        item for r in recording.sent("POST", "/v1/messages/batches") for item in orjson.loads(r.content)["requests"]
    ]


# -- tools, per-request parameters and models -----------------------------------------------------------------------
def test_tools_and_parameters_differ_per_request(anthropic_env: Emulator) -> None:
    recording = record_worker_http(MODEL)
    tools = ModelRequestParameters(function_tools=[CALCULATE], allow_text_output=True)
    requests = [
        ("calls", ask("Use calculate for 15 * 23"), tools),
        ("plain", ask("What is 15 * 23?"), {"temperature": 0.1, "max_tokens": 50}),
        ("warm", ask("Tell a story"), {"model_settings": {"temperature": 0.9}, "model_request_parameters": tools}),
    ]
    batch = batch_wait_sync(batch_create_sync(MODEL, requests, poll_interval=0.1).id)
    results = {r.custom_id: r.response for r in batch_results_sync(batch.id)}

    call = results["calls"].parts[0]  # type: ignore[union-attr]
    assert isinstance(call, ToolCallPart) and call.tool_name == "calculate" and call.args_as_dict()["expression"]
    assert results["plain"].text == "Mock response for plain"  # type: ignore[union-attr]
    sent = {item["custom_id"]: item["params"] for item in sent_requests(recording)}
    assert sent["plain"]["temperature"] == 0.1 and sent["plain"]["max_tokens"] == 50  # type: ignore[index]
    assert "tools" not in sent["plain"]  # type: ignore[operator]
    assert sent["warm"]["temperature"] == 0.9 and sent["warm"]["tools"][0]["name"] == "calculate"  # type: ignore[index]
    [create] = recording.sent("POST", "/v1/messages/batches")
    assert create.headers["x-api-key"] == FAKE_ANTHROPIC_KEY and create.headers["anthropic-version"] == "2023-06-01"
    assert int(create.headers["content-length"]) == len(create.content)
    assert batches_created(anthropic_env) == 1


def test_one_batch_mixes_two_models(anthropic_env: Emulator) -> None:
    recording = record_worker_http(MODEL)
    requests = [
        ("sonnet", ask("a")),
        ("haiku", ask("b"), {"model": "claude-haiku-4-5"}),
        ("haiku-cold", ask("c"), {"model": "anthropic:claude-haiku-4-5", "model_settings": {"temperature": 0.0}}),
    ]
    batch = batch_wait_sync(batch_create_sync(MODEL, requests, poll_interval=0.1).id)
    results = {r.custom_id: r.response for r in batch_results_sync(batch.id)}
    assert {cid: r.model_name for cid, r in results.items()} == {  # type: ignore[union-attr]
        "sonnet": "claude-sonnet-4-5",
        "haiku": "claude-haiku-4-5",
        "haiku-cold": "claude-haiku-4-5",
    }
    assert len(batch.provider_batches) == 1 and batch.provider_batches[0].request_count == 3
    sent = {item["custom_id"]: item["params"] for item in sent_requests(recording)}
    assert {cid: p["model"] for cid, p in sent.items()} == {  # type: ignore[index]
        "sonnet": "claude-sonnet-4-5",
        "haiku": "claude-haiku-4-5",
        "haiku-cold": "claude-haiku-4-5",
    }
    assert sent["haiku-cold"]["temperature"] == 0.0  # type: ignore[index]
    assert batches_created(anthropic_env) == 1


def test_structured_output_in_native_tool_and_prompted_modes(anthropic_env: Emulator) -> None:
    recording = record_worker_http(MODEL)
    requests = [(mode, ask("What is the largest city in France?"), params) for mode, params in output_modes().items()]
    batch = batch_wait_sync(batch_create_sync(MODEL, requests, poll_interval=0.1).id)
    results = {r.custom_id: r.response for r in batch_results_sync(batch.id)}

    assert City.model_validate_json(results["native"].text)  # type: ignore[union-attr,arg-type]
    tool_call = results["tool"].parts[0]  # type: ignore[union-attr]
    assert isinstance(tool_call, ToolCallPart) and tool_call.tool_name == "final_result"
    assert City.model_validate(tool_call.args_as_dict()).name
    assert results["prompted"].text == "Mock response for prompted"  # type: ignore[union-attr]
    sent = {item["custom_id"]: item["params"] for item in sent_requests(recording)}
    assert sent["native"]["output_config"]["format"]["type"] == "json_schema"  # type: ignore[index]
    assert sent["tool"]["tool_choice"] == {"type": "any"}  # type: ignore[index]
    assert "Always respond with a JSON object" in orjson.dumps(sent["prompted"]["system"]).decode()  # type: ignore[index]


# -- custom_ids Anthropic refuses -----------------------------------------------------------------------------------
def test_custom_ids_anthropic_refuses_round_trip_unseen(anthropic_env: Emulator) -> None:
    recording = record_worker_http(MODEL)
    odd = ["user 1/é ü", "x" * 100, "order#42:line.7", "plain_id-1"]
    batch = batch_wait_sync(batch_create_sync(MODEL, [(cid, ask(cid)) for cid in odd], poll_interval=0.1).id)
    results = batch_results_sync(batch.id)

    assert [r.custom_id for r in results] == odd and all(r.is_successful for r in results)
    sent_ids = [item["custom_id"] for item in sent_requests(recording)]
    assert all(ALLOWED_ID.fullmatch(str(cid)) for cid in sent_ids)
    assert sent_ids == [safe_id(cid) for cid in odd] and sent_ids[-1] == "plain_id-1"
    # The emulator answers with the id it was sent; the user sees it under their own id.
    assert results[0].response.text == f"Mock response for {safe_id(odd[0])}"  # type: ignore[union-attr]
    assert batches_created(anthropic_env) == 1


def test_a_custom_id_equal_to_another_ones_stand_in_is_refused(anthropic_env: Emulator) -> None:
    with pytest.raises(BatchInputError, match="rename it"):
        batch_create_sync(MODEL, [("a b", ask("x")), (safe_id("a b"), ask("y"))])
    assert anthropic_env.stats()["calls"] == {}


# -- per-request errors and batches that end badly ------------------------------------------------------------------
def test_per_request_errors_carry_the_error_type_and_message(anthropic_env: Emulator) -> None:
    anthropic_env.fail_requests(["bad"], kind="invalid_request", message="messages.0: text too long")
    anthropic_env.fail_requests(["busy"], kind="rate_limit")
    anthropic_env.fail_requests(["tired"], kind="overloaded")
    requests = [(cid, ask(cid)) for cid in ("ok", "bad", "busy", "tired")]
    batch = batch_wait_sync(batch_create_sync(MODEL, requests, poll_interval=0.1, max_resubmissions=0).id)
    results = {r.custom_id: r for r in batch_results_sync(batch.id)}
    assert results["ok"].is_successful
    assert results["bad"].error == BatchError("invalid_request_error", "messages.0: text too long")
    assert results["busy"].error is not None and results["busy"].error.code == "rate_limit_error"
    assert results["tired"].error is not None and results["tired"].error.code == "overloaded_error"
    assert (batch.completed_count, batch.failed_count) == (1, 3)
    assert batches_created(anthropic_env) == 1


def test_an_expired_batch_keeps_its_finished_work(anthropic_env: Emulator) -> None:
    anthropic_env.add_fault(BatchFault(outcome="expire", provider="anthropic", done_fraction=0.5))
    requests = [(f"q{i}", ask(str(i))) for i in range(4)]
    batch = batch_wait_sync(batch_create_sync(MODEL, requests, poll_interval=0.1, max_resubmissions=0).id)
    assert batch.status is BatchStatus.EXPIRED and batch.provider_batches[0].status == "ended"
    results = batch_results_sync(batch.id)
    assert sum(r.is_successful for r in results) == 2
    assert [r.error.code for r in results if r.error] == ["expired", "expired"]
    assert batches_created(anthropic_env) == 1


def test_a_batch_cancelled_at_the_provider_returns_what_ran(anthropic_env: Emulator) -> None:
    anthropic_env.add_fault(BatchFault(outcome="cancel", provider="anthropic", done_fraction=0.5))
    batch = batch_wait_sync(batch_create_sync(MODEL, [(f"q{i}", ask(str(i))) for i in range(4)], poll_interval=0.1).id)
    assert batch.status is BatchStatus.CANCELLED
    results = batch_results_sync(batch.id)
    assert sum(r.is_successful for r in results) == 2
    assert [r.error.code for r in results if r.error] == ["canceled", "canceled"]


def test_cancelling_a_running_job_cancels_its_message_batch(anthropic_env: Emulator) -> None:
    anthropic_env.configure(stage_seconds=30)
    batch = batch_create_sync(MODEL, [("q1", ask("a")), ("q2", ask("b"))], poll_interval=0.1)
    assert batch.provider_batches[0].status == "in_progress"
    batch_cancel_sync(batch.id)
    calls = anthropic_env.stats
    wait_for(lambda: calls()["calls"].get("POST /v1/messages/batches/{batch_id}/cancel"), "the cancel call", timeout=20)
    anthropic_env.advance_clock(60)
    final = batch_wait_sync(batch.id)
    assert final.status is BatchStatus.CANCELLED
    assert [r.error.code for r in batch_results_sync(batch.id) if r.error] == ["canceled", "canceled"]
    assert batches_created(anthropic_env) == 1


def test_a_refused_create_fails_the_job_with_anthropics_reason(anthropic_env: Emulator) -> None:
    anthropic_env.add_fault(BatchFault(outcome="fail", provider="anthropic", message="Too many batches in flight."))
    batch = batch_wait_sync(batch_create_sync(MODEL, [("q1", ask("a")), ("q2", ask("b"))], poll_interval=0.1).id)
    assert batch.status is BatchStatus.FAILED
    assert "Too many batches in flight." in (batch.provider_batches[0].error or "")
    for result in batch_results_sync(batch.id):
        assert result.error is not None and result.error.code == "invalid_request_error"
        assert "Too many batches in flight." in result.error.message
    assert batches_created(anthropic_env) == 0
    assert anthropic_env.stats()["calls"]["POST /v1/messages/batches"] == 1  # refused once, never sent again


def test_a_truncated_results_download_is_read_again(anthropic_env: Emulator) -> None:
    anthropic_env.add_fault(HttpFault(kind="truncate", provider="anthropic", path="/results", fraction=0.6, times=1))
    requests = [(f"q {i}", ask(str(i))) for i in range(300)]  # mapped ids too: the map survives the retry
    batch = batch_wait_sync(batch_create_sync(MODEL, requests, poll_interval=0.1).id)
    results = batch_results_sync(batch.id)
    assert batch.status is BatchStatus.COMPLETED and len(results) == 300 and all(r.is_successful for r in results)
    assert [r.custom_id for r in results] == [cid for cid, _ in requests]
    assert anthropic_env.stats()["calls"]["GET /v1/messages/batches/{batch_id}/results"] == 2
    assert batches_created(anthropic_env) == 1


# -- beta flags: a batch-wide header ---------------------------------------------------------------------------------
def test_requests_with_beta_flags_get_a_batch_with_that_header(anthropic_env: Emulator) -> None:
    recording = record_worker_http(MODEL)
    requests = [
        ("plain", ask("a")),
        ("beta", ask("b"), {"anthropic_betas": ["context-1m-2025-08-07"]}),
    ]
    batch = batch_wait_sync(batch_create_sync(MODEL, requests, poll_interval=0.1).id)
    assert all(r.is_successful for r in batch_results_sync(batch.id))
    creates = recording.sent("POST", "/v1/messages/batches")
    headers = sorted(r.headers.get("anthropic-beta", "") for r in creates)
    assert headers == ["", "context-1m-2025-08-07"]
    for create in creates:
        for item in orjson.loads(create.content)["requests"]:
            assert "__batchline_betas__" not in item["params"]  # the marker never leaves batchline
    assert batches_created(anthropic_env) == 2


# -- transport details, on the adapter itself -----------------------------------------------------------------------
def test_a_worker_without_anthropic_api_key_refuses_before_any_http_call(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    adapter = AnthropicProvider("claude-sonnet-4-5", context())
    with pytest.raises(ProviderRejected, match="ANTHROPIC_API_KEY is not set"):
        adapter.create("job", 0, iter([("a", b"{}")]), 1)
    assert emulator.stats()["calls"] == {}
    assert AnthropicProvider.can_find is False and adapter.find("job", 0) is None


def test_results_are_read_from_the_results_url_as_given() -> None:
    """On an origin the operator trusts (BATCHLINE_TRUSTED_RESULT_HOSTS); others are refused (test_hostile_provider)."""
    seen: list[str] = []
    line = {"custom_id": "a", "result": {"type": "expired"}}

    def anthropic(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        if request.url.host == "files.example":
            return httpx2.Response(200, content=orjson.dumps(line) + b"\n")
        ended = {"id": "msgbatch_1", "processing_status": "ended", "request_counts": {"expired": 1}}
        return httpx2.Response(200, json={**ended, "results_url": "https://files.example/r/msgbatch_1?sig=x"})

    adapter = AnthropicProvider("claude-sonnet-4-5", context())
    adapter._http = ProviderHTTP(
        "anthropic",
        *client_config({"ANTHROPIC_API_KEY": "k"}),
        transport=httpx2.MockTransport(anthropic),
        trusted=["https://files.example"],
    )
    snapshot = adapter.status("msgbatch_1")
    assert (snapshot.state, snapshot.total, snapshot.failed) == ("expired", 1, 1)
    assert list(adapter.results(snapshot)) == [("a", "expired", b"")]
    assert seen == [
        "https://api.anthropic.com/v1/messages/batches/msgbatch_1",
        "https://files.example/r/msgbatch_1?sig=x",
    ]


# -- a real worker process ------------------------------------------------------------------------------------------
@pytest.mark.redis
def test_mapped_custom_ids_survive_the_trip_through_a_real_worker(
    redis_url: str, emulator: Emulator, tmp_path: Path
) -> None:
    """The id map lives in the store's Redis: the worker process that creates the batch and the one that fetches it
    share nothing else."""
    setup = make_real_setup(redis_url)
    process = WorkerProcess({**setup.env, **provider_env(emulator)}, tmp_path / "worker.log", concurrency=2)
    worker.use_app(setup.app)
    try:
        requests = [(f"ticket #{i} / ü", ask(f"Private note {i}"), {"model": "claude-haiku-4-5"}) for i in range(20)]
        results = model_request_batch_sync(MODEL, requests, poll_interval=0.2)
        assert [r.custom_id for r in results] == [cid for cid, _, _ in requests]
        assert all(r.response is not None and r.response.model_name == "claude-haiku-4-5" for r in results)
        assert batches_created(emulator) == 1
        log = process.output()
        assert "Task batchline.fetch[" in log
        assert "Private note" not in log and FAKE_ANTHROPIC_KEY not in log
        assert not list(setup.client.scan_iter(match=f"{setup.settings.key_prefix}anthropic:ids:*"))  # cleaned up
    finally:
        worker._current = None
        process.stop()
        setup.cleanup()

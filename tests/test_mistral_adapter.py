"""The Mistral adapter: its encoding against what pydantic-ai's MistralModel sends live, its decoding against what
that model makes of the same answer, jobs through the emulator's Mistral API (lifecycle, faults, cancel, `find`),
the documented payloads in tests/fixtures/recorded/mistral, and a job on a real worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
from pydantic_ai import ModelRequest, TextPart, ToolCallPart, ToolDefinition
from pydantic_ai.exceptions import ModelContextWindowExceededError, ModelHTTPError, UserError
from pydantic_ai.messages import ModelResponse
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.batch import BatchRequest
from pydantic_ai.models.mistral import MistralModel
from pydantic_ai.providers.mistral import MistralProvider as PydanticAIMistralProvider

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
from batchline.errors import ProviderRejected, TransientProviderError
from batchline.providers import get_provider
from batchline.providers.mistral import MistralProvider
from batchline.providers.mistral import transport as mistral_transport
from batchline.providers.mistral import wire as mistral_wire
from batchline.raw import RawRequest, from_line
from batchline.records import StoredResult

from .conftest import RECORDED, WorkerProcess, make_real_setup
from .openai_anthropic_helpers import ask, context, fresh_runtime
from .test_examples_batch_api import NAMES, SCRIPTS, check_output, expected, run_in_process
from .waiting import wait_for

MODEL = "mistral:mistral-small-latest"
FAKE_MISTRAL_KEY = "mistral-test-not-a-real-key-0123456789"
WEATHER = ToolDefinition(
    name="get_weather",
    parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    description="The weather in a city.",
)


def mistral_env(emulator: Emulator) -> dict[str, str]:
    return {"MISTRAL_BASE_URL": emulator.mistral_base_url, "MISTRAL_API_KEY": FAKE_MISTRAL_KEY}


@pytest.fixture
def on_emulator(emulator: Emulator, embedded: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """The embedded default with the worker's MISTRAL_* variables pointing at the emulator."""
    for name, value in mistral_env(emulator).items():
        monkeypatch.setenv(name, value)
    fresh_runtime()
    yield emulator
    fresh_runtime()


def created(emulator: Emulator) -> tuple[int, int]:
    stats = emulator.stats()["mistral"]
    return stats["batches_created"], stats["files_created"]


def texts(results: list[Any]) -> dict[str, str]:
    return {r.custom_id: r.response.text for r in results if r.response is not None}


# -- the codec against pydantic-ai's MistralModel, live ---------------------------------------------------------------
ANSWER = {
    "id": "cmpl-1",
    "object": "chat.completion",
    "model": "mistral-small-latest",
    "created": 1735689650,
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [
                    {"id": "abcDEF123", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42},
}


def live(request: BatchRequest) -> tuple[dict[str, Any], ModelResponse]:
    """What pydantic-ai's MistralModel sends for `request` and makes of `ANSWER`, through a transport that records."""
    import asyncio

    sent: list[dict[str, Any]] = []

    def handler(http_request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(http_request.content))
        return httpx2.Response(200, json=ANSWER)

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    model = MistralModel("mistral-small-latest", provider=PydanticAIMistralProvider(api_key="k", http_client=client))
    response = asyncio.run(model.request(request.messages, request.model_settings, request.model_request_parameters))
    return sent[0], response


@pytest.mark.parametrize(
    "request_",
    [
        BatchRequest(custom_id="plain", messages=ask("Which cheese?")),
        BatchRequest(
            custom_id="tools",
            messages=[ModelRequest.user_text_prompt("Weather in Paris?", instructions="Be brief.")],
            model_settings={"max_tokens": 50, "temperature": 0.2, "seed": 7, "stop_sequences": ["END"]},
            model_request_parameters=ModelRequestParameters(function_tools=[WEATHER]),
        ),
    ],
    ids=["plain", "tools-and-settings"],
)
def test_encoding_and_decoding_are_mistral_models_own(request_: BatchRequest) -> None:
    body, response = live(request_)
    adapter = get_provider(MODEL)
    (encoded,) = adapter.encode_many([request_])
    assert encoded.group == "mistral-small-latest"
    without = {k: v for k, v in body.items() if k not in ("model", "stream")}  # the job names the model
    assert orjson.loads(encoded.body) == without
    decoded = adapter.decode(StoredResult(request_.custom_id, "succeeded", orjson.dumps(ANSWER)), request_)
    assert decoded.parts == response.parts and decoded.usage == response.usage
    assert (decoded.model_name, decoded.provider_response_id, decoded.finish_reason) == (
        response.model_name,
        response.provider_response_id,
        response.finish_reason,
    )
    assert decoded.provider_details == {**(response.provider_details or {}), "processing": "batch"}
    assert isinstance(decoded.parts[-1], ToolCallPart) and decoded.parts[-1].tool_call_id == "abcDEF123"


def test_a_job_encoded_once_per_shape_is_what_each_request_encodes_to_alone() -> None:
    import asyncio

    from batchline.providers.mistral import codec

    texts = ["plain", 'héllo "q" \n\t✓ \\ end', "日本語 </script>", "  padded  "]
    requests = [BatchRequest(custom_id=f"r{i}", messages=ask(text)) for i, text in enumerate(texts)]
    alone = [asyncio.run(codec.encode_body(codec.codec_model("mistral-small-latest"), r)) for r in requests]
    together = get_provider(MODEL).encode_many(requests)
    assert [orjson.loads(e.body) for e in together] == [orjson.loads(body) for body in alone]
    assert [orjson.loads(e.body)["messages"][0]["content"] for e in together] == texts


def test_settings_a_batch_cannot_honour_are_refused_before_anything_is_stored() -> None:
    request = BatchRequest(custom_id="a", messages=ask("x"), model_settings={"timeout": 3.0})
    with pytest.raises(UserError, match="per-request timeout"):
        get_provider(MODEL).encode_many([request])


# -- the documented payloads ------------------------------------------------------------------------------------------
def recorded(name: str) -> Any:
    text = (RECORDED / "mistral" / name).read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()] if name.endswith("l") else json.loads(text)


def test_every_documented_payload_is_read() -> None:
    sequence = [mistral_wire.to_snapshot(job) for job in recorded("batch_job_status_sequence_DOCS_SHAPE.json")]
    assert [(s.status, s.state) for s in sequence] == [
        ("QUEUED", "running"),
        ("RUNNING", "running"),
        ("SUCCESS", "completed"),
    ]
    assert (sequence[2].total, sequence[2].completed, sequence[2].failed) == (2, 1, 1)
    assert set(sequence[2].details) == {"output_file", "error_file", "input_files"}
    upload = recorded("file_upload_response_DOCS_SHAPE.json")
    assert upload["purpose"] == "batch" and isinstance(upload["id"], str)
    adapter = get_provider(MODEL)
    ask_ = BatchRequest(custom_id="0", messages=[])
    out = [mistral_wire.result_of(line) for line in recorded("batch_output_DOCS_SHAPE.jsonl")]
    assert [(cid, status) for cid, status, _ in out] == [("0", "succeeded"), ("2", "succeeded")]
    first = adapter.decode(StoredResult(*out[0]), ask_)
    assert first.parts == [TextPart("Roquefort goes well with pears.")] and first.usage.input_tokens == 11
    second = adapter.decode(StoredResult(*out[1]), ask_)
    assert isinstance(second.parts[0], ToolCallPart) and second.parts[0].args == '{"city": "Paris"}'
    assert mistral_wire.usage_of(out[1][2]) == (70, 21)
    errors = [mistral_wire.result_of(line) for line in recorded("batch_error_DOCS_SHAPE.jsonl")]
    assert [(cid, status) for cid, status, _ in errors] == [("1", "errored"), ("3", "errored")]
    with pytest.raises(ModelHTTPError) as limited:
        adapter.decode(StoredResult(*errors[0]), ask_)
    assert limited.value.status_code == 429
    with pytest.raises(ModelContextWindowExceededError):
        adapter.decode(StoredResult(*errors[1]), ask_)
    for line in recorded("batch_input_DOCS_SHAPE.jsonl"):  # raw mode takes the documented input lines with a model
        raw = adapter.encode_raw(RawRequest(line["custom_id"], {**line["body"], "model": "mistral-small-latest"}))
        assert orjson.loads(raw.body) == line["body"] and raw.group == "mistral-small-latest"


# -- jobs through the emulator ----------------------------------------------------------------------------------------
def test_a_mistral_job_runs_through_its_lifecycle(on_emulator: Emulator) -> None:
    on_emulator.configure(stage_seconds=0.5)
    requests = [(f"q{i}", ask(f"question {i}")) for i in range(25)]
    batch = batch_wait_sync(batch_create_sync(MODEL, requests, poll_interval=0.1).id)
    assert batch.status is BatchStatus.COMPLETED and batch.provider_batches[0].status == "SUCCESS"
    results = batch_results_sync(batch.id)
    assert texts(results) == {f"q{i}": f"Mock response for q{i}" for i in range(25)}
    assert all(r.response is not None and r.response.provider_name == "mistral" for r in results)
    usage = sum(r.response.usage.input_tokens for r in results if r.response is not None)
    assert batch.usage.input_tokens == usage > 0  # each body's `usage`, read by the Mistral wire
    assert batch.cost is not None and batch.cost > 0  # priced by genai-prices' mistral provider
    assert created(on_emulator) == (1, 1)
    assert on_emulator.stats()["calls"]["DELETE /mistral/v1/files/{file_id}"] == 2  # input and output files


def test_tools_come_back_as_tool_calls(on_emulator: Emulator) -> None:
    params = ModelRequestParameters(function_tools=[WEATHER])
    prompt = ask("Call get_weather for Paris.")  # the emulator's model calls the tools a prompt names
    batch = batch_create_sync(MODEL, [("w", prompt)], model_request_parameters=params, poll_interval=0.1)
    (result,) = batch_results_sync(batch_wait_sync(batch.id).id)
    response = result.response
    assert response is not None and isinstance(response.parts[-1], ToolCallPart)
    assert response.parts[-1].tool_name == "get_weather" and response.finish_reason == "tool_call"
    assert "city" in response.parts[-1].args_as_dict()


def test_per_request_errors_carry_mistrals_code_and_message(on_emulator: Emulator) -> None:
    on_emulator.fail_requests(["busy"], provider="mistral", kind="rate_limit")
    on_emulator.fail_requests(["bad"], provider="mistral", kind="invalid_request", message="Too long.")
    requests = [("ok", ask("a")), ("busy", ask("b")), ("bad", ask("c"))]
    batch = batch_create_sync(MODEL, requests, poll_interval=0.1, max_resubmissions=0)
    results = {r.custom_id: r for r in batch_results_sync(batch_wait_sync(batch.id).id)}
    assert results["ok"].is_successful
    assert results["busy"].error == BatchError("1300", "Requests rate limit exceeded.")
    assert results["bad"].error == BatchError("3000", "Too long.")


def test_a_rate_limited_request_is_sent_again_in_a_new_job(on_emulator: Emulator) -> None:
    on_emulator.fail_requests(["busy"], provider="mistral", kind="rate_limit")
    batch = batch_create_sync(MODEL, [("ok", ask("a")), ("busy", ask("b"))], poll_interval=0.1, max_resubmissions=1)
    batch_wait_sync(batch.id)
    assert on_emulator.received()["mistral"].count("busy") == 2 and on_emulator.received()["mistral"].count("ok") == 1


def test_a_timed_out_job_keeps_what_ran_and_expires_the_rest(on_emulator: Emulator) -> None:
    on_emulator.add_fault(BatchFault(outcome="expire", provider="mistral", done_fraction=0.5))
    batch = batch_create_sync(MODEL, [(f"q{i}", ask(str(i))) for i in range(6)], poll_interval=0.1, max_resubmissions=0)
    final = batch_wait_sync(batch.id)
    assert final.status is BatchStatus.EXPIRED and final.provider_batches[0].status == "TIMEOUT_EXCEEDED"
    results = batch_results_sync(batch.id)
    assert sum(r.is_successful for r in results) == 3 and {r.error.code for r in results if r.error} == {"expired"}
    assert created(on_emulator) == (1, 1)


def test_a_failed_job_gives_every_request_its_reason(on_emulator: Emulator) -> None:
    on_emulator.add_fault(BatchFault(outcome="fail", provider="mistral", message="Quota exceeded for this model."))
    batch = batch_wait_sync(batch_create_sync(MODEL, [("a", ask("a")), ("b", ask("b"))], poll_interval=0.1).id)
    assert batch.status is BatchStatus.FAILED and batch.provider_batches[0].error == "Quota exceeded for this model."
    for result in batch_results_sync(batch.id):
        assert result.error is not None and result.error.message == "Quota exceeded for this model."
    assert created(on_emulator) == (1, 1)


def test_cancelling_a_running_job_cancels_its_mistral_job(on_emulator: Emulator) -> None:
    on_emulator.configure(stage_seconds=30)
    batch = batch_create_sync(MODEL, [("q1", ask("a")), ("q2", ask("b"))], poll_interval=0.1)
    assert batch.provider_batches[0].status == "QUEUED"
    batch_cancel_sync(batch.id)
    calls = on_emulator.stats
    wait_for(lambda: calls()["calls"].get("POST /mistral/v1/batch/jobs/{job_id}/cancel"), "the cancel", timeout=20)
    on_emulator.advance_clock(60)
    final = batch_wait_sync(batch.id)
    assert final.status is BatchStatus.CANCELLED and final.provider_batches[0].status == "CANCELLED"
    assert [r.error.code for r in batch_results_sync(batch.id) if r.error] == ["canceled", "canceled"]


def test_a_worker_without_mistral_api_key_refuses_before_any_http_call(
    on_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY")
    fresh_runtime()
    batch = batch_wait_sync(batch_create_sync(MODEL, [("a", ask("a"))], poll_interval=0.1).id)
    assert batch.status is BatchStatus.FAILED and "MISTRAL_API_KEY is not set" in (
        batch.provider_batches[0].error or ""
    )
    assert on_emulator.stats()["calls"] == {}


def test_bad_input_fails_before_anything_is_spent(on_emulator: Emulator) -> None:
    with pytest.raises(BatchInputError, match="names no model"):
        batch_create_sync(MODEL, [RawRequest("a", {"messages": [{"role": "user", "content": "x"}]})])
    with pytest.raises(BatchInputError, match="not an endpoint batchline batches on Mistral"):
        batch_create_sync(MODEL, [RawRequest("a", {"model": "m"}, "/v1/ocr")])
    assert on_emulator.stats()["calls"] == {}


# -- the transport on its own -----------------------------------------------------------------------------------------
def test_find_recovers_a_job_by_its_metadata_across_pages(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in mistral_env(emulator).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(mistral_wire, "FIND_PAGE", 2)
    adapter = MistralProvider("mistral-small-latest", context())
    body = adapter.encode(BatchRequest(custom_id="a", messages=ask("x"))).body
    made = [adapter.create("job-1", part, iter([("a", body)]), 1) for part in range(5)]
    again = MistralProvider("mistral-small-latest", context())  # another worker, which never saw the ids
    found = again.find("job-1", 0)  # the oldest: on the last page, newest first
    assert found is not None and found.id == made[0].id and found.state == "completed"
    assert again.find("job-1", 7) is None and again.find("job-2", 0) is None
    assert emulator.stats()["mistral"]["batches_created"] == 5
    assert emulator.stats()["calls"]["GET /mistral/v1/batch/jobs"] >= 3


def test_a_listing_too_long_to_search_is_no_proof_of_absence(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in mistral_env(emulator).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(mistral_wire, "FIND_PAGE", 1)
    monkeypatch.setattr(mistral_wire, "FIND_PAGES", 2)
    adapter = MistralProvider("mistral-small-latest", context())
    body = adapter.encode(BatchRequest(custom_id="a", messages=ask("x"))).body
    for part in range(3):
        adapter.create("job-1", part, iter([("a", body)]), 1)
    from batchline.errors import MalformedAnswer

    with pytest.raises(MalformedAnswer, match="not taken as proof"):  # the pipeline then fails the part, unpaid
        adapter.find("job-1", 9)


def test_a_create_is_sent_once_and_uploads_and_reads_are_retried(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in mistral_env(emulator).items():
        monkeypatch.setenv(name, value)
    adapter = MistralProvider("mistral-small-latest", context())
    adapter.http.backoff = 0.01
    body = adapter.encode(BatchRequest(custom_id="a", messages=ask("x"))).body
    emulator.add_fault(HttpFault(status=503, provider="mistral", method="POST", path="/v1/files$", times=1))
    emulator.add_fault(HttpFault(status=500, provider="mistral", method="GET", path="/v1/batch/jobs/", times=1))
    snapshot = adapter.create("job", 0, iter([("a", body)]), 1)
    assert snapshot.state == "completed"
    calls = emulator.stats()["calls"]
    assert calls["POST /mistral/v1/files"] == 2 and calls["POST /mistral/v1/batch/jobs"] == 1
    emulator.add_fault(HttpFault(status=429, provider="mistral", method="POST", path="/v1/batch/jobs$", retry_after=0))
    with pytest.raises(TransientProviderError, match="429"):
        adapter.create("job", 1, iter([("a", body)]), 1)
    assert emulator.stats()["calls"]["POST /mistral/v1/batch/jobs"] == 2  # a paid create is never retried blind
    emulator.clear_faults()
    emulator.add_fault(HttpFault(status=400, provider="mistral", method="POST", path="/v1/batch/jobs$", times=1))
    with pytest.raises(ProviderRejected, match="400"):
        adapter.create("job", 2, iter([("a", body)]), 1)
    assert emulator.stats()["calls"]["DELETE /mistral/v1/files/{file_id}"] == 1  # the refused job's input file
    emulator.add_fault(HttpFault(kind="drop", provider="mistral", path="/content", times=1))
    with pytest.raises(TransientProviderError, match="broke off"):
        list(adapter.results(snapshot))
    assert [status for _, status, _ in adapter.results(snapshot)] == ["succeeded"]


def test_the_key_and_base_url_come_from_the_sdks_variables() -> None:
    assert mistral_transport.client_config({"MISTRAL_API_KEY": "k"}) == (
        "https://api.mistral.ai",
        {"Authorization": "Bearer k"},
    )
    base, _ = mistral_transport.client_config({"MISTRAL_API_KEY": "k", "MISTRAL_BASE_URL": "https://gw.example/m"})
    assert base == "https://gw.example/m"
    with pytest.raises(ProviderRejected, match="MISTRAL_API_KEY is not set"):
        mistral_transport.client_config({"MISTRAL_BASE_URL": base})
    assert from_line({"custom_id": "a", "body": {"messages": []}}) == RawRequest("a", {"messages": []})


# -- a real worker process --------------------------------------------------------------------------------------------
@pytest.mark.redis
def test_a_mistral_job_runs_on_a_real_worker(redis_url: str, emulator: Emulator, tmp_path: Path) -> None:
    setup = make_real_setup(redis_url)
    process = WorkerProcess({**setup.env, **mistral_env(emulator)}, tmp_path / "worker.log")
    worker.use_app(setup.app)
    try:
        requests = [(f"doc-{i}", ask(f"Summarise secret document {i}")) for i in range(30)]
        results = model_request_batch_sync(MODEL, requests, poll_interval=0.2)
        assert texts(results) == {f"doc-{i}": f"Mock response for doc-{i}" for i in range(30)}
        assert created(emulator) == (1, 1)
        log = process.output()
        assert "Task batchline.fetch[" in log
        assert "secret document" not in log and FAKE_MISTRAL_KEY not in log
        assert "pydantic_ai.models.mistral" not in log
    finally:
        worker._current = None
        process.stop()
        setup.cleanup()


# -- the seed examples ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("script", SCRIPTS, ids=NAMES)
def test_example_on_mistral_through_the_emulator(
    script: Path, on_emulator: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """examples/batch_api, unchanged, on 'mistral:mistral-small-latest' print what they show: Mistral's parts carry no
    item ids, so the output is the `.out` file's as it is."""
    monkeypatch.setenv("BATCHLINE_EXAMPLE_MODEL", MODEL)
    args = (MODEL,) if script.name == "tools.py" else ()
    check_output(expected(script), run_in_process(script, monkeypatch, capsys, *args))
    assert created(on_emulator)[0] == 1


def test_a_mistral_model_instance_is_refused_naming_the_model_string() -> None:
    from batchline.model_forms import ModelNotBatchable, resolve_model

    instance = MistralModel("mistral-small-latest", provider=PydanticAIMistralProvider(api_key="k"))
    with pytest.raises(ModelNotBatchable, match="'mistral:'"):
        resolve_model(instance)
    assert resolve_model(MODEL).model == MODEL and resolve_model(MODEL, direct=True).model == MODEL

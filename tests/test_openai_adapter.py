"""The OpenAI adapter against the emulator: the batch API examples, large jobs, structured output, faults, `find`."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import orjson
import pytest
from pydantic_ai import TextPart, ToolCallPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.batch import BatchRequest

from batchline import (
    BatchError,
    BatchInputError,
    BatchStatus,
    batch_cancel_sync,
    batch_create_sync,
    batch_results_sync,
    batch_status_sync,
    batch_wait_sync,
    model_request_batch_sync,
    worker,
)
from batchline.codec import ModelBatchRequest
from batchline.config import Settings
from batchline.emulator import BatchFault, Emulator, HttpFault
from batchline.errors import ProviderRejected, TransientProviderError
from batchline.providers.http import ProviderHTTP
from batchline.providers.openai import OpenAIProvider
from batchline.providers.openai import transport as openai_adapter
from batchline.providers.openai import wire as openai_wire

from .conftest import WorkerProcess, make_real_setup, set_embedded_settings, with_settings
from .openai_anthropic_helpers import (
    CALCULATE,
    FAKE_OPENAI_KEY,
    Calculate,
    City,
    ask,
    context,
    fresh_runtime,
    output_modes,
    provider_env,
    uploaded_bodies,
)
from .test_examples_batch_api import EXAMPLES, NAMES, SCRIPTS, check_output, expected, run_in_process
from .waiting import wait_for

MODEL = "openai:gpt-4o-mini"


@pytest.fixture
def openai_env(emulator: Emulator, embedded: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """The embedded default with the worker's OPENAI_* variables pointing at the emulator."""
    for name, value in provider_env(emulator).items():
        monkeypatch.setenv(name, value)
    fresh_runtime()
    yield emulator
    fresh_runtime()


def created(emulator: Emulator) -> tuple[int, int]:
    stats = emulator.stats()["openai"]
    return stats["batches_created"], stats["files_created"]


def texts(results: list[object]) -> dict[str, str]:
    return {r.custom_id: r.response.text for r in results if r.response is not None}  # type: ignore[attr-defined]


# -- the examples ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("script", SCRIPTS, ids=NAMES)
def test_example_on_openai_through_the_emulator(
    script: Path, openai_env: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """examples/batch_api, unchanged, on 'openai:gpt-4o-mini' (from BATCHLINE_EXAMPLE_MODEL) prints what it shows."""
    monkeypatch.setenv("BATCHLINE_EXAMPLE_MODEL", MODEL)
    check_output(expected(script), without_item_ids(run_in_process(script, monkeypatch, capsys)))
    assert openai_env.stats()["openai"]["batches_created"] == 1


def without_item_ids(stdout: str) -> str:
    """The printed parts without the two fields the `test` model leaves out.

    The Responses API names every output item, and pydantic-ai keeps that id on the part (`TextPart(content=...,
    id='msg_...', provider_name='openai')`) to send the history back; the `.out` files show the `test` model's parts,
    without ids. Only those two fields are taken out: content and everything else must be as the example prints.
    """
    return re.sub(r", id='msg_[0-9a-f]+', provider_name='openai'\)", ")", stdout)


def test_the_tool_example_on_both_providers(
    openai_env: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = EXAMPLES / "tools.py"
    for model in (MODEL, "anthropic:claude-sonnet-4-5"):
        stdout = run_in_process(script, monkeypatch, capsys, model)
        check_output(expected(script), without_item_ids(stdout) if model == MODEL else stdout)  # Anthropic: as is
    stats = openai_env.stats()
    assert stats["openai"]["batches_created"] == 1 and stats["anthropic"]["batches_created"] == 1


# -- tools, per-request parameters, structured output ---------------------------------------------------------------
def test_tools_and_parameters_differ_per_request(openai_env: Emulator, embedded: Settings) -> None:
    set_embedded_settings(with_settings(embedded, cleanup_files=False))  # keep the input file to look at
    tools = ModelRequestParameters(function_tools=[CALCULATE], allow_text_output=True)
    requests = [
        ("calls", ask("Use calculate for 15 * 23"), tools),  # the emulator's model calls a tool the prompt names
        ("plain", ask("What is 15 * 23?"), {"temperature": 0.1, "max_tokens": 50}),
        ("warm", ask("Tell a story"), {"model_settings": {"temperature": 0.9}, "model_request_parameters": tools}),
    ]
    batch = batch_create_sync(MODEL, requests, poll_interval=0.1)
    results = {r.custom_id: r for r in batch_results_sync(batch_wait_sync(batch.id))}

    call = results["calls"].response.parts[0]  # type: ignore[union-attr]
    assert isinstance(call, ToolCallPart) and call.tool_name == "calculate"
    assert Calculate.model_validate(call.args_as_dict()).expression
    assert results["plain"].response.text == "Mock response for plain"  # type: ignore[union-attr]
    bodies = uploaded_bodies(openai_env)
    assert bodies["plain"]["temperature"] == 0.1 and bodies["plain"]["max_output_tokens"] == 50
    assert "tools" not in bodies["plain"]
    assert bodies["warm"]["temperature"] == 0.9 and bodies["warm"]["tools"][0]["name"] == "calculate"  # type: ignore[index]
    assert created(openai_env) == (1, 1)


def test_structured_output_in_native_tool_and_prompted_modes(openai_env: Emulator, embedded: Settings) -> None:
    set_embedded_settings(with_settings(embedded, cleanup_files=False))
    modes = output_modes()
    requests = [(mode, ask("What is the largest city in France?"), params) for mode, params in modes.items()]
    batch = batch_create_sync(MODEL, requests, poll_interval=0.1)
    results = {r.custom_id: r.response for r in batch_results_sync(batch_wait_sync(batch.id))}

    assert City.model_validate_json(results["native"].text)  # type: ignore[union-attr,arg-type]
    tool_call = results["tool"].parts[0]  # type: ignore[union-attr]
    assert isinstance(tool_call, ToolCallPart) and tool_call.tool_name == "final_result"
    assert City.model_validate(tool_call.args_as_dict()).population == 1
    assert isinstance(results["prompted"].parts[0], TextPart)  # type: ignore[union-attr]
    bodies = uploaded_bodies(openai_env)
    assert bodies["native"]["text"]["format"]["type"] == "json_schema"  # type: ignore[index]
    assert bodies["tool"]["tool_choice"] == "required"
    assert "Always respond with a JSON object" in orjson.dumps(bodies["prompted"]["input"]).decode()


# -- size: one job, three provider batches --------------------------------------------------------------------------
@pytest.mark.slow
def test_120000_requests_become_three_batches_and_120000_results(openai_env: Emulator) -> None:
    started = time.monotonic()
    requests = [(f"r{i}", ask(f"q{i}")) for i in range(120_000)]
    batch = batch_create_sync(MODEL, requests, poll_interval=0.1, submit_wait=0)
    final = batch_wait_sync(batch.id)
    ran = time.monotonic() - started

    assert final.status is BatchStatus.COMPLETED
    assert (final.request_count, final.completed_count, final.failed_count) == (120_000, 120_000, 0)
    assert [p.request_count for p in final.provider_batches] == [50_000, 50_000, 20_000]
    assert [p.completed_count for p in final.provider_batches] == [50_000, 50_000, 20_000]
    assert len({p.id for p in final.provider_batches}) == 3
    assert created(openai_env) == (3, 3)
    assert openai_env.stats()["calls"]["POST /v1/batches"] == 3
    # Decoding is pydantic-ai's and costs ~0.7 ms a result: every 100th result, across all three batches,
    # is decoded here; all 120,000 are counted above from the stored results.
    sample = [f"r{i}" for i in range(0, 120_000, 100)] + ["r119999"]
    results = batch_results_sync(batch.id, custom_ids=sample)
    assert [r.custom_id for r in results] == sample
    assert texts(results) == {cid: f"Mock response for {cid}" for cid in sample}
    print(f"120,000 OpenAI requests: {ran:.1f}s from create to every result stored")


# -- per-request models ---------------------------------------------------------------------------------------------
def test_a_request_naming_another_model_goes_to_a_batch_of_its_own(openai_env: Emulator) -> None:
    requests = [
        ("mini", ask("a")),
        ("big", ask("b"), {"model": "openai:gpt-4o"}),
        ("big2", ask("c"), {"model": "gpt-4o"}),
    ]
    batch = batch_wait_sync(batch_create_sync(MODEL, requests, poll_interval=0.1).id)
    results = {r.custom_id: r.response for r in batch_results_sync(batch.id)}
    assert {cid: r.model_name for cid, r in results.items()} == {
        "mini": "gpt-4o-mini",
        "big": "gpt-4o",
        "big2": "gpt-4o",
    }  # type: ignore[union-attr]
    assert sorted(p.request_count for p in batch.provider_batches) == [1, 2]  # one model per OpenAI batch
    assert created(openai_env) == (2, 2)


# -- bad input, refused before anything is stored or sent -----------------------------------------------------------
def test_bad_input_fails_before_anything_is_spent(openai_env: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BatchInputError, match="timeout"):  # pydantic-ai: the Batch API has no per-request timeout
        batch_create_sync(MODEL, [("a", ask("x"), {"timeout": 5})])
    with pytest.raises(BatchInputError, match="messages must be"):
        batch_create_sync(MODEL, [("a", "just a string")])
    with pytest.raises(BatchInputError, match="go to openai"):
        batch_create_sync(MODEL, [("a", ask("x"), {"model": "anthropic:claude-sonnet-4-5"})])
    with pytest.raises(BatchInputError, match="cannot name its own model"):
        batch_create_sync("test", [("a", ask("x"), {"model": "other"})])
    monkeypatch.setattr(OpenAIProvider, "max_bytes", 2_000)
    with pytest.raises(BatchInputError, match=r"request 'big' takes [\d,]+ bytes, more than a openai batch holds"):
        batch_create_sync(MODEL, [("small", ask("x")), ("big", ask("x" * 5_000))])
    assert openai_env.stats()["calls"] == {}


def test_a_worker_without_openai_api_key_refuses_before_any_http_call(
    openai_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    adapter = OpenAIProvider("gpt-4o-mini", context())
    with pytest.raises(ProviderRejected, match="OPENAI_API_KEY is not set") as raised:
        adapter.create("job", 0, iter([("a", b"{}")]), 1)
    assert FAKE_OPENAI_KEY not in str(raised.value)

    batch = batch_wait_sync(batch_create_sync(MODEL, [("a", ask("x"))], poll_interval=0.1).id)
    assert batch.status is BatchStatus.FAILED
    assert "OPENAI_API_KEY" in (batch.provider_batches[0].error or "")
    [result] = batch_results_sync(batch.id)
    assert result.error is not None and "OPENAI_API_KEY is not set" in result.error.message
    assert openai_env.stats()["calls"] == {}


# -- per-request errors and batches that end badly ------------------------------------------------------------------
def test_per_request_errors_carry_the_provider_code_and_message(openai_env: Emulator) -> None:
    openai_env.fail_requests(["bad"], kind="invalid_request", message="Invalid 'input': too long.")
    openai_env.fail_requests(["busy"], kind="rate_limit")
    requests = [("ok", ask("a")), ("bad", ask("b")), ("busy", ask("c"))]
    batch = batch_create_sync(MODEL, requests, poll_interval=0.1, max_resubmissions=0)
    results = {r.custom_id: r for r in batch_results_sync(batch_wait_sync(batch.id))}
    assert results["ok"].is_successful
    assert results["bad"].error == BatchError("invalid_request_error", "Invalid 'input': too long.")
    assert results["busy"].error is not None and results["busy"].error.code == "rate_limit_exceeded"
    assert batch_status_sync(batch.id).failed_count == 2
    assert created(openai_env) == (1, 1)


def test_an_expired_batch_keeps_its_finished_work_and_expires_the_rest(openai_env: Emulator) -> None:
    openai_env.add_fault(BatchFault(outcome="expire", provider="openai", done_fraction=0.5))
    requests = [(f"q{i}", ask(str(i))) for i in range(6)]
    batch = batch_wait_sync(batch_create_sync(MODEL, requests, poll_interval=0.1, max_resubmissions=0).id)
    assert batch.status is BatchStatus.EXPIRED and batch.provider_batches[0].status == "expired"
    results = batch_results_sync(batch.id)
    assert sum(r.is_successful for r in results) == 3
    assert {r.error.code for r in results if r.error} == {"expired"}
    assert created(openai_env) == (1, 1)


def test_a_batch_cancelled_at_the_provider_returns_what_ran(openai_env: Emulator) -> None:
    openai_env.add_fault(BatchFault(outcome="cancel", provider="openai", done_fraction=0.5))
    batch = batch_wait_sync(batch_create_sync(MODEL, [(f"q{i}", ask(str(i))) for i in range(4)], poll_interval=0.1).id)
    assert batch.status is BatchStatus.CANCELLED
    results = batch_results_sync(batch.id)
    assert sum(r.is_successful for r in results) == 2
    assert {r.error.code for r in results if r.error} == {"canceled"}
    assert created(openai_env) == (1, 1)


def test_cancelling_a_running_job_cancels_its_openai_batch(openai_env: Emulator) -> None:
    openai_env.configure(stage_seconds=30)
    batch = batch_create_sync(MODEL, [("q1", ask("a")), ("q2", ask("b"))], poll_interval=0.1)
    assert batch.provider_batches[0].status == "validating"
    batch_cancel_sync(batch.id)
    wait_for(
        lambda: openai_env.stats()["calls"].get("POST /v1/batches/{batch_id}/cancel"), "the cancel call", timeout=20
    )
    openai_env.advance_clock(60)  # the cancelling stage passes
    final = batch_wait_sync(batch.id)
    assert final.status is BatchStatus.CANCELLED and final.provider_batches[0].status == "cancelled"
    assert [r.error.code for r in batch_results_sync(batch.id) if r.error] == ["canceled", "canceled"]


def test_a_failed_batch_gives_every_request_its_reason(openai_env: Emulator) -> None:
    openai_env.add_fault(BatchFault(outcome="fail", provider="openai", code="token_limit_exceeded"))
    batch = batch_wait_sync(batch_create_sync(MODEL, [("q1", ask("a")), ("q2", ask("b"))], poll_interval=0.1).id)
    assert batch.status is BatchStatus.FAILED
    assert (batch.provider_batches[0].error or "").startswith("token_limit_exceeded: Enqueued token limit reached")
    for result in batch_results_sync(batch.id):
        assert result.error is not None and result.error.code == "token_limit_exceeded"
        assert result.error.message.startswith("Enqueued token limit reached")
    assert created(openai_env) == (1, 1)


def test_a_truncated_download_is_read_again(openai_env: Emulator) -> None:
    openai_env.add_fault(HttpFault(kind="truncate", provider="openai", path="/content", fraction=0.5, times=1))
    requests = [(f"q{i}", ask(str(i))) for i in range(200)]
    batch = batch_wait_sync(batch_create_sync(MODEL, requests, poll_interval=0.1).id)
    results = batch_results_sync(batch.id)
    assert batch.status is BatchStatus.COMPLETED and len(results) == 200 and all(r.is_successful for r in results)
    assert texts(results)["q199"] == "Mock response for q199"
    assert openai_env.stats()["calls"]["GET /v1/files/{file_id}/content"] == 2
    assert created(openai_env) == (1, 1)


def test_files_are_deleted_once_results_are_stored_unless_told_not_to(openai_env: Emulator, embedded: Settings) -> None:
    openai_env.fail_requests(["bad"], kind="invalid_request")
    batch = batch_wait_sync(batch_create_sync(MODEL, [("ok", ask("a")), ("bad", ask("b"))], poll_interval=0.1).id)
    assert batch.status is BatchStatus.COMPLETED
    assert openai_env.stats()["calls"]["DELETE /v1/files/{file_id}"] == 3  # input, output and error files

    openai_env.reset()
    set_embedded_settings(with_settings(embedded, cleanup_files=False))
    batch_wait_sync(batch_create_sync(MODEL, [("ok", ask("a"))], poll_interval=0.1).id)
    assert "DELETE /v1/files/{file_id}" not in openai_env.stats()["calls"]
    assert openai_env.stats()["files"] == 2  # the input and output files stay


# -- transport details, on the adapter itself -----------------------------------------------------------------------
def test_find_recovers_a_batch_by_its_metadata_across_pages(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in provider_env(emulator).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(openai_wire, "FIND_PAGE", 2)
    adapter = OpenAIProvider("gpt-4o-mini", context())
    body = OpenAIProvider("gpt-4o-mini").encode(BatchRequest(custom_id="a", messages=ask("x"))).body
    made = [adapter.create("job-1", part, iter([("a", body)]), 1) for part in range(5)]

    again = OpenAIProvider("gpt-4o-mini", context())  # another worker, which never saw the ids
    found = again.find("job-1", 0)  # the oldest: on the last page, newest first
    assert found is not None and found.id == made[0].id and found.state == "completed"
    assert again.find("job-1", 7) is None and again.find("job-2", 0) is None
    assert emulator.stats()["openai"]["batches_created"] == 5
    assert emulator.stats()["calls"]["GET /v1/batches"] >= 3


def test_a_create_is_sent_once_and_uploads_and_reads_are_retried(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in provider_env(emulator).items():
        monkeypatch.setenv(name, value)
    adapter = OpenAIProvider("gpt-4o-mini", context())
    adapter.http.backoff = 0.01
    body = OpenAIProvider("gpt-4o-mini").encode(BatchRequest(custom_id="a", messages=ask("x"))).body

    emulator.add_fault(HttpFault(status=503, provider="openai", method="POST", path="/v1/files$", times=1))
    emulator.add_fault(HttpFault(status=500, provider="openai", method="GET", path="/v1/batches/", times=1))
    snapshot = adapter.create("job", 0, iter([("a", body)]), 1)
    assert snapshot.state == "completed"
    calls = emulator.stats()["calls"]
    assert calls["POST /v1/files"] == 2 and calls["POST /v1/batches"] == 1  # the upload went again, whole

    emulator.add_fault(HttpFault(status=429, provider="openai", method="POST", path="/v1/batches$", retry_after=0))
    with pytest.raises(TransientProviderError, match="429"):
        adapter.create("job", 1, iter([("a", body)]), 1)
    assert emulator.stats()["calls"]["POST /v1/batches"] == 2  # once more: a paid create is never retried blind
    emulator.clear_faults()
    emulator.add_fault(HttpFault(kind="drop", provider="openai", path="/content", times=1))
    with pytest.raises(TransientProviderError, match="broke off"):
        list(adapter.results(snapshot))
    assert [status for _, status, _ in adapter.results(snapshot)] == ["succeeded"]


def test_a_compatible_host_is_reached_under_its_own_base_url() -> None:
    seen: list[tuple[str, str, str | None]] = []

    def groq(request: httpx2.Request) -> httpx2.Response:
        seen.append((request.method, str(request.url), request.headers.get("authorization")))
        if request.url.path.endswith("/files"):
            return httpx2.Response(200, json={"id": "file-1"})
        return httpx2.Response(200, json={"id": "batch_1", "status": "validating", "input_file_id": "file-1"})

    base, headers = openai_adapter.client_config(
        {"OPENAI_API_KEY": "gsk-x", "OPENAI_BASE_URL": "https://api.groq.com/openai/v1"}
    )
    adapter = OpenAIProvider("llama-3.1-8b-instant", context())
    adapter._http = ProviderHTTP("openai", base, headers, transport=httpx2.MockTransport(groq))
    assert adapter.create("job", 0, iter([("a", b'{"model":"llama-3.1-8b-instant"}')]), 1).state == "running"
    assert [url for _, url, _ in seen] == [
        "https://api.groq.com/openai/v1/files",
        "https://api.groq.com/openai/v1/batches",
        "https://api.groq.com/openai/v1/batches/batch_1",
    ]
    assert {auth for _, _, auth in seen} == {"Bearer gsk-x"}
    _, azure = openai_adapter.client_config(
        {"OPENAI_API_KEY": "az", "OPENAI_BASE_URL": "https://me.openai.azure.com/openai/v1"}
    )
    assert azure["api-key"] == "az"


# -- a real worker process ------------------------------------------------------------------------------------------
@pytest.mark.redis
def test_an_openai_job_runs_on_a_real_worker(redis_url: str, emulator: Emulator, tmp_path: Path) -> None:
    setup = make_real_setup(redis_url)
    process = WorkerProcess({**setup.env, **provider_env(emulator)}, tmp_path / "worker.log")
    worker.use_app(setup.app)
    try:
        requests = [(f"doc-{i}", ask(f"Summarise secret document {i}")) for i in range(30)]
        results = model_request_batch_sync(MODEL, requests, poll_interval=0.2)
        assert texts(results) == {f"doc-{i}": f"Mock response for doc-{i}" for i in range(30)}
        assert created(emulator) == (1, 1)
        log = process.output()
        assert "Task batchline.fetch[" in log
        assert "secret document" not in log and FAKE_OPENAI_KEY not in log
    finally:
        worker._current = None
        process.stop()
        setup.cleanup()


def test_a_fine_tuned_model_name_keeps_its_colons() -> None:
    request = BatchRequest(custom_id="a", messages=ask("x"))
    tuned = ModelBatchRequest(custom_id="a", messages=ask("x"), model="ft:gpt-4o-mini:acme::abc123")
    adapter = OpenAIProvider("gpt-4o-mini")
    assert [e.group for e in adapter.encode_many([request, tuned])] == ["gpt-4o-mini", "ft:gpt-4o-mini:acme::abc123"]
    assert orjson.loads(adapter.encode(tuned).body)["model"] == "ft:gpt-4o-mini:acme::abc123"

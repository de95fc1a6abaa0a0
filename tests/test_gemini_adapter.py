"""The Gemini adapter against the emulator: jobs end to end, inline and file, errors, cancel, expiry, recovery, SDK."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import fakeredis
import pytest
from google import genai
from google.genai import types as genai_types
from pydantic_ai import ModelRequest
from pydantic_ai.messages import TextPart, ToolCallPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.batch import BatchRequest
from pydantic_ai.output import OutputObjectDefinition
from pydantic_ai.tools import ToolDefinition

from batchline import (
    BatchStatus,
    batch_cancel_sync,
    batch_create_sync,
    batch_results_sync,
    batch_status_sync,
    model_request_batch_sync,
    pipeline,
    worker,
)
from batchline.config import Settings
from batchline.emulator import BatchFault, Emulator, HttpFault
from batchline.errors import ProviderRejected, TransientProviderError
from batchline.providers import ProviderContext
from batchline.providers.gemini import GeminiProvider, wire
from batchline.providers.gemini import api as api_module
from batchline.providers.gemini.api import GeminiAPI, credentials
from batchline.providers.gemini.spool import PartInput
from batchline.records import PartState, StoredResult
from batchline.runtime import Runtime
from batchline.store import Store
from batchline.types import Batch

from .conftest import WorkerProcess, make_real_setup, set_embedded_settings, store_job, with_settings
from .waiting import wait_for

MODEL = "google:gemini-2.5-flash"
KEY = "gemini-test-key-not-a-secret-7f3a"
WEATHER = ToolDefinition(
    name="get_weather",
    parameters_json_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city", "days"],
    },
)
CITY = OutputObjectDefinition(
    json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}, name="City"
)


def prompt(text: str) -> list[ModelRequest]:
    return [ModelRequest.user_text_prompt(text)]


def _request(custom_id: str) -> BatchRequest:
    return BatchRequest(custom_id=custom_id, messages=prompt(f"question {custom_id}"))


def ask(*ids: str) -> list[tuple[str, list[ModelRequest]]]:
    return [(cid, prompt(f"question {cid}")) for cid in ids]


@pytest.fixture
def gemini(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator, with this process's environment pointing the adapter at it."""
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emulator.gemini_base_url)
    return emulator


@pytest.fixture(params=["inline", "file"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs with inline batches, then with every part sent as an uploaded file."""
    if request.param == "file":
        monkeypatch.setattr(GeminiProvider, "inline_limit", 1)
    return str(request.param)


@pytest.fixture
def adapter(gemini: Emulator) -> GeminiProvider:
    return GeminiProvider(
        "gemini-2.5-flash", ProviderContext(Settings(), Store(fakeredis.FakeRedis(), "gt:").scratch("gemini"))
    )


@pytest.fixture
def sdk(gemini: Emulator) -> genai.Client:
    return genai.Client(api_key=KEY, http_options=genai_types.HttpOptions(base_url=gemini.gemini_base_url))


def wait(batch: Batch, seconds: float = 30.0) -> Batch:
    state = wait_for(
        lambda: (now := batch_status_sync(batch)).is_complete and now, lambda: f"job {batch.id} to end", timeout=seconds
    )
    assert isinstance(state, Batch)
    return state


def created(emulator: Emulator) -> tuple[int, int, int]:
    """Batches created, files uploaded, create calls made."""
    stats = emulator.stats()
    calls = stats["calls"].get("POST /v1beta/models/{model}:batchGenerateContent", 0)
    return stats["gemini"]["batches_created"], stats["gemini"]["files_created"], calls


# -- jobs through the embedded default ---------------------------------------------------------------------------------
def test_a_job_runs_and_its_results_come_back_in_request_order(embedded: Settings, gemini: Emulator, mode: str) -> None:
    ids = ["q5", "q1", "q9", "q3", "q7"]
    results = model_request_batch_sync(MODEL, ask(*ids), poll_interval=0.1)
    assert [r.custom_id for r in results] == ids
    assert [r.response.text for r in results if r.response] == [f"Mock response for {cid}" for cid in ids]
    assert all(r.response and r.response.model_name == "gemini-2.5-flash" for r in results)
    assert created(gemini) == (1, 1 if mode == "file" else 0, 1)  # one batch, created once
    assert gemini.stats()["files"] == 0, "the input and result files were deleted once the results were stored"


def test_file_output_comes_shuffled_and_is_matched_by_key(
    embedded: Settings, gemini: Emulator, monkeypatch: pytest.MonkeyPatch, sdk: genai.Client
) -> None:
    monkeypatch.setattr(GeminiProvider, "inline_limit", 1)
    set_embedded_settings(with_settings(embedded, cleanup_files=False))
    ids = [f"doc-{i:02d}" for i in range(40)]
    batch = wait(batch_create_sync(MODEL, ask(*ids), poll_interval=0.1))
    assert batch.status is BatchStatus.COMPLETED and (batch.completed_count, batch.failed_count) == (40, 0)
    results = batch_results_sync(batch)
    assert [(r.custom_id, r.response.text if r.response else None) for r in results] == [
        (cid, f"Mock response for {cid}") for cid in ids
    ]
    # The result file, still there as cleanup is off, really is out of order.
    job = sdk.batches.get(name=batch.provider_batches[0].id or "")
    assert job.dest is not None and job.dest.file_name
    keys = [json.loads(line)["key"] for line in sdk.files.download(file=job.dest.file_name).splitlines()]
    assert sorted(keys) == ids and keys != ids


def test_tools_and_structured_output(embedded: Settings, gemini: Emulator, mode: str) -> None:
    tools = ModelRequestParameters(function_tools=[WEATHER], allow_text_output=False)
    native = ModelRequestParameters(output_mode="native", output_object=CITY)
    requests = [
        ("plain", prompt("hello")),
        ("tool", prompt("what is the weather?"), tools),
        ("structured", prompt("name a city"), native),
    ]
    results = {r.custom_id: r for r in model_request_batch_sync(MODEL, requests, poll_interval=0.1)}
    plain, tool, structured = (results[k].response for k in ("plain", "tool", "structured"))
    assert plain is not None and plain.text == "Mock response for plain"
    assert tool is not None and len(tool.parts) == 1 and isinstance(call := tool.parts[0], ToolCallPart)
    assert call.tool_name == "get_weather" and call.args_as_dict() == {"city": "example city", "days": 1}
    assert structured is not None and isinstance(part := structured.parts[0], TextPart)
    assert json.loads(part.content) == {"city": "example city"}
    assert created(gemini)[0] == 1


def test_per_request_errors_are_each_requests_own(embedded: Settings, gemini: Emulator, mode: str) -> None:
    gemini.fail_requests(["bad"], provider="gemini", kind="invalid_request", message="Unsupported thing in request.")
    batch = wait(batch_create_sync(MODEL, ask("ok-1", "bad", "ok-2"), poll_interval=0.1))
    assert batch.status is BatchStatus.COMPLETED and (batch.completed_count, batch.failed_count) == (2, 1)
    assert (batch.provider_batches[0].completed_count, batch.provider_batches[0].failed_count) == (2, 1)
    results = batch_results_sync(batch)
    assert [r.is_successful for r in results] == [True, False, True]
    error = results[1].error
    assert error is not None and (error.code, error.message) == ("400", "Unsupported thing in request.")
    assert created(gemini)[0] == 1  # an invalid request is not worth another batch


def test_rate_limited_requests_go_again_in_new_batches(embedded: Settings, gemini: Emulator) -> None:
    gemini.fail_requests(["busy"], provider="gemini", kind="rate_limit")  # fails in every batch from now on
    batch = wait(batch_create_sync(MODEL, ask("fine", "busy"), poll_interval=0.1, max_resubmissions=2))
    assert [pb.request_count for pb in batch.provider_batches] == [2, 1, 1]
    fine, busy = batch_results_sync(batch)
    assert fine.is_successful and busy.error is not None and busy.error.code == "429"
    assert created(gemini)[0] == 3


def test_a_batch_that_succeeded_with_every_request_failed_says_so(
    embedded: Settings, gemini: Emulator, mode: str
) -> None:
    gemini.fail_requests(pattern=".", provider="gemini", kind="invalid_request")
    batch = wait(batch_create_sync(MODEL, ask("a", "b", "c"), poll_interval=0.1))
    assert batch.status is BatchStatus.FAILED and (batch.completed_count, batch.failed_count) == (0, 3)
    (part,) = batch.provider_batches
    assert part.status == "BATCH_STATE_SUCCEEDED" and part.failed_count == 3
    assert part.error is not None and "every one of its 3 requests failed" in part.error
    assert all(r.error is not None and r.error.code == "400" for r in batch_results_sync(batch))


def test_a_failed_batch_gives_every_request_its_reason(embedded: Settings, gemini: Emulator, mode: str) -> None:
    gemini.add_fault(BatchFault(outcome="fail", provider="gemini", message="Input is invalid."))
    batch = wait(batch_create_sync(MODEL, ask("a", "b"), poll_interval=0.1))
    assert batch.status is BatchStatus.FAILED and batch.failed_count == 2
    assert batch.provider_batches[0].error == "INVALID_ARGUMENT: Input is invalid."
    for result in batch_results_sync(batch):
        assert result.error is not None and result.error.code == "batch_failed"
        assert result.error.message == "INVALID_ARGUMENT: Input is invalid."


def test_cancel_stops_the_provider_batch(embedded: Settings, gemini: Emulator, mode: str) -> None:
    gemini.configure(stage_seconds=300)
    batch = batch_create_sync(MODEL, ask("a", "b", "c"), poll_interval=0.1)
    assert batch.status is BatchStatus.IN_PROGRESS and batch.provider_batches[0].status == "BATCH_STATE_PENDING"
    batch_cancel_sync(batch)
    final = wait(batch)
    assert final.status is BatchStatus.CANCELLED and final.provider_batches[0].status == "BATCH_STATE_CANCELLED"
    assert all(r.error is not None and r.error.code == "canceled" for r in batch_results_sync(batch))
    # The cancel task asks, and a poll that runs meanwhile may ask too: a second ask of an ended batch is harmless.
    assert 1 <= gemini.stats()["calls"]["POST /v1beta/batches/{name}:cancel"] <= 2


def test_expiry_with_partial_results(embedded: Settings, gemini: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(GeminiProvider, "inline_limit", 1)
    gemini.add_fault(BatchFault(outcome="expire", provider="gemini", done_fraction=0.5))
    ids = [f"r{i}" for i in range(6)]
    batch = wait(batch_create_sync(MODEL, ask(*ids), poll_interval=0.1, max_resubmissions=0))
    assert batch.status is BatchStatus.EXPIRED and batch.provider_batches[0].status == "BATCH_STATE_EXPIRED"
    results = batch_results_sync(batch)
    assert [r.custom_id for r in results] == ids
    done = [r for r in results if r.is_successful]
    assert len(done) == 3 and all(r.response and r.response.text == f"Mock response for {r.custom_id}" for r in done)
    assert all(r.error and r.error.code == "expired" for r in results if not r.is_successful)


def test_expired_requests_go_again_and_complete(embedded: Settings, gemini: Emulator, mode: str) -> None:
    gemini.add_fault(BatchFault(outcome="expire", provider="gemini", done_fraction=0.5, times=1))
    ids = [f"r{i}" for i in range(4)]
    batch = wait(batch_create_sync(MODEL, ask(*ids), poll_interval=0.1))
    assert batch.status is BatchStatus.COMPLETED and batch.completed_count == 4
    expected_retry = 2 if mode == "file" else 4  # an expired inline batch returns no partial results
    assert [pb.request_count for pb in batch.provider_batches] == [4, expected_retry]
    assert [r.response.text for r in batch_results_sync(batch) if r.response] == [f"Mock response for {c}" for c in ids]


def test_a_batch_past_its_window_expires(embedded: Settings, gemini: Emulator) -> None:
    gemini.configure(stage_seconds=100, completion_window_seconds=150)
    batch = batch_create_sync(MODEL, ask("a", "b"), poll_interval=0.1, max_resubmissions=0)
    gemini.advance_clock(200)
    final = wait(batch)
    assert final.status is BatchStatus.EXPIRED
    assert all(r.error and r.error.code == "expired" for r in batch_results_sync(batch))


def test_a_broken_off_download_is_read_again(
    embedded: Settings, gemini: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(GeminiProvider, "inline_limit", 1)
    gemini.add_fault(HttpFault(kind="truncate", provider="gemini", path=":download", fraction=0.4, times=1))
    ids = [f"r{i}" for i in range(30)]
    batch = wait(batch_create_sync(MODEL, ask(*ids), poll_interval=0.1))
    assert batch.status is BatchStatus.COMPLETED and batch.completed_count == 30
    assert [r.response.text for r in batch_results_sync(batch) if r.response] == [f"Mock response for {c}" for c in ids]
    assert gemini.stats()["calls"]["GET /v1beta/files/{name}:download"] == 2


def test_a_create_whose_answer_was_lost_is_found_not_repeated(
    embedded: Settings, gemini: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The batch is created at Gemini, then the connection drops before its answer arrives.
    real_create = GeminiAPI.create_batch
    lost: list[str] = []

    def create_then_drop(self: GeminiAPI, model: str, body: bytes) -> dict[str, object]:
        operation = real_create(self, model, body)
        if not lost:
            lost.append(str(operation["name"]))
            raise TransientProviderError("gemini: ReadTimeout on POST (simulated)")
        return operation

    monkeypatch.setattr(GeminiAPI, "create_batch", create_then_drop)
    batch = wait(batch_create_sync(MODEL, ask("a", "b"), poll_interval=0.1))
    assert batch.status is BatchStatus.COMPLETED and batch.completed_count == 2
    assert batch.provider_batches[0].id == lost[0]
    assert created(gemini) == (1, 0, 1)  # found by listing, not created again
    assert gemini.stats()["calls"]["GET /v1beta/batches"] >= 1


def test_a_missing_key_is_refused_before_any_call(
    embedded: Settings, gemini: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GEMINI_API_KEY")
    batch = wait(batch_create_sync(MODEL, ask("a"), poll_interval=0.1))
    assert batch.status is BatchStatus.FAILED
    error = batch.provider_batches[0].error
    assert error is not None and "GEMINI_API_KEY" in error and "GOOGLE_API_KEY" in error
    assert gemini.stats()["calls"] == {}


def test_the_key_never_appears_in_an_error(adapter: GeminiProvider) -> None:
    with pytest.raises(ProviderRejected) as raised:
        adapter.status("batches/does-not-exist")
    assert raised.value.status_code == 404 and "not found" in str(raised.value) and KEY not in str(raised.value)


# -- the adapter on its own --------------------------------------------------------------------------------------------
def test_the_position_map_is_stored_before_the_batch_is_created(adapter: GeminiProvider, gemini: Emulator) -> None:
    gemini.add_fault(HttpFault(kind="status", status=400, provider="gemini", path="batchGenerateContent", times=1))
    body = b'{"contents":[{"parts":[{"text":"hi"}],"role":"user"}]}'
    with pytest.raises(ProviderRejected):
        adapter.create("job-1", 0, [("z", body), ("a", body), ("m", body)], 3)
    redis = adapter.context.scratch.redis
    assert redis.lrange("gt:gemini:job-1:0:ids", 0, -1) == [b"z", b"a", b"m"]
    assert 0 < redis.ttl("gt:gemini:job-1:0:ids") <= Settings().ttl_seconds


def test_find_recovers_a_batch_by_its_display_name(
    adapter: GeminiProvider, gemini: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_module, "LIST_PAGE", 2)  # the listing is read over several pages
    body = b'{"contents":[{"parts":[{"text":"hi"}],"role":"user"}]}'
    made = {part: adapter.create("job-find", part, [(f"c{part}", body)], 1).id for part in range(5)}
    assert len(set(made.values())) == 5
    for part, batch_id in made.items():
        found = adapter.find("job-find", part)
        assert (
            found is not None and found.id == batch_id and found.details["display_name"] == f"batchline:job-find:{part}"
        )
    assert adapter.find("job-find", 7) is None and adapter.find("other-job", 0) is None


def test_a_worker_that_died_after_create_is_healed_by_listing(gemini: Emulator) -> None:
    store = Store(fakeredis.FakeRedis(), "heal:")
    runtime = Runtime(Settings(), store)
    provider = runtime.provider(MODEL)
    job_id = store_job(runtime, MODEL, [_request(cid) for cid in ("a", "b", "c")])
    # A worker claimed the part long ago, created the batch, and died before recording its id.
    store.claim_part(job_id, 0, f"dead-worker:{time.time() - 3600}")
    lost = provider.create(job_id, 0, store.part_requests(job_id, 0), 3)
    nexts = pipeline.submit(runtime, job_id)
    assert [(n.step, n.part) for n in nexts] == [("fetch", 0)]  # listed, and already ended
    assert store.part(job_id, 0).provider_id == lost.id and created(gemini)[0] == 1
    pipeline.fetch(runtime, job_id, 0)
    assert store.part(job_id, 0).state == PartState.STORED
    stored = store.results(job_id, ["a", "b", "c"])
    assert [s.status if s else None for s in stored] == ["succeeded"] * 3


def test_cancel_of_an_ended_batch_answers_its_state(adapter: GeminiProvider) -> None:
    body = b'{"contents":[{"parts":[{"text":"hi"}],"role":"user"}]}'
    snapshot = adapter.create("job-c", 0, [("a", body)], 1)
    assert adapter.status(snapshot.id).state == "completed"
    assert adapter.cancel(snapshot.id).state == "completed"  # nothing to cancel, and no error for it


def test_the_inline_limit_decides_the_mode(adapter: GeminiProvider, gemini: Emulator) -> None:
    body = b'{"contents":[{"parts":[{"text":"' + b"x" * 1000 + b'"}],"role":"user"}]}'
    requests = [(f"r{i}", body) for i in range(10)]
    adapter.inline_limit = 12_000  # ten items of ~1,070 bytes and the envelope fit
    adapter.create("job-m", 0, requests, 10)
    assert created(gemini) == (1, 0, 1)
    adapter.inline_limit = 10_000  # they no longer do: the same part goes as a file
    adapter.create("job-m", 1, requests, 10)
    assert created(gemini) == (2, 1, 2)
    assert adapter.context.scratch.redis.hget("gt:gemini:job-m:1", "mode") == b"file"


# -- the official SDK and batchline on the same batches ----------------------------------------------------------------
def test_batchline_reads_batches_the_sdk_created(adapter: GeminiProvider, sdk: genai.Client) -> None:
    inline = [{"contents": [{"parts": [{"text": f"question {i}"}], "role": "user"}]} for i in range(3)]
    job = sdk.batches.create(model="gemini-2.5-flash", src=inline, config={"display_name": "made-by-sdk"})  # type: ignore[arg-type]
    assert job.name is not None
    snapshot = adapter.status(job.name)
    assert (snapshot.state, snapshot.total, snapshot.details["display_name"]) == ("completed", 3, "made-by-sdk")
    results = list(adapter.results(snapshot))
    assert [(cid, status) for cid, status, _ in results] == [("0", "succeeded"), ("1", "succeeded"), ("2", "succeeded")]
    texts = [adapter.decode(StoredResult(cid, s, b), _request(cid)).text for cid, s, b in results]
    assert texts == ["Mock response for 0", "Mock response for 1", "Mock response for 2"]

    lines = "\n".join(
        json.dumps({"key": f"k{i}", "request": {"contents": [{"parts": [{"text": "q"}], "role": "user"}]}})
        for i in range(5)
    )
    file = sdk.files.upload(file=io.BytesIO(lines.encode()), config={"mime_type": "application/jsonl"})
    job = sdk.batches.create(model="gemini-2.5-flash", src=file.name or "")
    snapshot = adapter.status(job.name or "")
    assert snapshot.state == "completed" and snapshot.details["responses_file"]
    assert sorted(cid for cid, _, _ in adapter.results(snapshot)) == [f"k{i}" for i in range(5)]


def test_the_sdk_reads_batches_batchline_created(adapter: GeminiProvider, sdk: genai.Client) -> None:
    body = b'{"contents":[{"parts":[{"text":"hi"}],"role":"user"}]}'
    inline = adapter.create("job-sdk", 0, [("z", body), ("y", body)], 2)
    job = sdk.batches.get(name=inline.id)
    assert job.display_name == "batchline:job-sdk:0" and job.model == "models/gemini-2.5-flash"
    assert job.state == genai_types.JobState.JOB_STATE_SUCCEEDED
    assert job.dest is not None and job.dest.inlined_responses is not None
    assert [r.response.text for r in job.dest.inlined_responses if r.response] == [
        "Mock response for z",
        "Mock response for y",
    ]

    adapter.inline_limit = 1
    in_file = adapter.create("job-sdk", 1, [("x", body), ("w", body)], 2)
    job = sdk.batches.get(name=in_file.id)
    assert job.display_name == "batchline:job-sdk:1" and job.dest is not None and job.dest.file_name
    keys = sorted(json.loads(line)["key"] for line in sdk.files.download(file=job.dest.file_name).splitlines())
    assert keys == ["w", "x"]
    listed = {j.name: j.display_name for j in sdk.batches.list()}
    assert listed[inline.id] == "batchline:job-sdk:0" and listed[in_file.id] == "batchline:job-sdk:1"
    uploaded = [f for f in sdk.files.list() if f.display_name == "batchline:job-sdk:1"]
    assert len(uploaded) == 1 and uploaded[0].mime_type == "application/jsonl"

    adapter.cleanup(adapter.status(in_file.id))  # the input and result files go, as settings.cleanup_files says
    assert not [f for f in sdk.files.list()]
    assert adapter.context.scratch.redis.exists("gt:gemini:job-sdk:1") == 0


# -- a real worker process ---------------------------------------------------------------------------------------------
@pytest.mark.redis
def test_a_job_through_a_real_worker_process(
    emulator: Emulator, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the worker has the key: the caller encodes with no credential at all.
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    setup = make_real_setup(redis_url)
    env = {k: v for k, v in setup.env.items() if k != "GOOGLE_API_KEY"}
    env.update(GEMINI_API_KEY=KEY, GOOGLE_GEMINI_BASE_URL=emulator.gemini_base_url)
    process = WorkerProcess(env, tmp_path / "worker.log")
    worker.use_app(setup.app)
    try:
        ids = [f"w{i}" for i in range(12)]
        requests = [(cid, prompt(f"private prompt {cid}")) for cid in ids]
        requests[3] = (
            "w3",
            prompt("what is the weather?"),
            ModelRequestParameters(function_tools=[WEATHER], allow_text_output=False),
        )
        batch = wait(batch_create_sync(MODEL, requests, poll_interval=0.2), seconds=60)
        assert batch.status is BatchStatus.COMPLETED and batch.completed_count == 12
        results = batch_results_sync(batch)
        assert [r.custom_id for r in results] == ids
        assert isinstance(results[3].response and results[3].response.parts[0], ToolCallPart)
        assert all(
            r.response and r.response.text == f"Mock response for {r.custom_id}" for r in results if r.custom_id != "w3"
        )
        assert created(emulator)[0] == 1
        log = process.output()
        assert "Task batchline.submit[" in log and "Task batchline.fetch[" in log
        assert KEY not in log and "private prompt" not in log
    finally:
        worker._current = None
        process.stop()
        setup.cleanup()


# -- small pieces ------------------------------------------------------------------------------------------------------
def test_the_inline_size_is_counted_exactly() -> None:
    requests = [(f'id-{i}-é"', b'{"contents":[{"parts":[{"text":"%d"}]}]}' % i) for i in range(7)]
    with PartInput.read("batchline:j:0", 10**9, requests) as spool:
        exact = len(spool.inline_body())
        assert json.loads(spool.inline_body())["batch"]["inputConfig"]["requests"]["requests"][6]["metadata"] == {
            "key": 'id-6-é"'
        }
    with PartInput.read("batchline:j:0", exact + 1, requests) as spool:
        assert spool.inline and spool.ids == [cid for cid, _ in requests]
    with PartInput.read("batchline:j:0", exact, requests) as spool:
        assert not spool.inline and spool.file is not None and spool.ids == []
        spool.file.seek(0)
        lines = [json.loads(line) for line in spool.file.read().splitlines()]
        assert [line["key"] for line in lines] == [cid for cid, _ in requests] and spool.file_size > 0


def test_keys_and_base_url_come_from_the_sdks_variables() -> None:
    both = {"GOOGLE_API_KEY": "from-google", "GEMINI_API_KEY": "from-gemini"}
    assert credentials(both) == ("from-google", "https://generativelanguage.googleapis.com")  # as google-genai
    assert credentials({"GEMINI_API_KEY": "g", "GOOGLE_GEMINI_BASE_URL": "http://proxy:8080/"}) == (
        "g",
        "http://proxy:8080",
    )
    with pytest.raises(ProviderRejected) as raised:
        credentials({"GEMINI_API_KEY": "  "})
    assert raised.value.status_code == 401 and "GEMINI_API_KEY" in str(raised.value)


@pytest.mark.parametrize(
    ("name", "owner"),
    [("batchline:job-1:3", ("job-1", 3)), ("batchline:J:" + "9" * 5000, None), ("batchline:J:\u0663", None)],
)
def test_a_display_name_names_its_part_only_in_plain_digits(name: str, owner: tuple[str, int] | None) -> None:
    """A batch's display name comes back from the provider: a 5,000-digit part number made `int()` raise (past
    Python's 4,300 digits) inside the fetch and the find, on every try."""
    assert wire.parse_display_name(name) == owner

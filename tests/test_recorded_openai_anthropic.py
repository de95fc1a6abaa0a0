"""The recorded OpenAI and Anthropic payloads in tests/fixtures/recorded go through the adapters: status answers
become the right Snapshot states and counts, result files stream through `results()` into the right
`(custom_id, status, body)` triples, and those decode (pydantic-ai's `batch_decode`) into the right responses or
errors. The files are served over a mock HTTP transport, so the adapters' own requests are checked too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
from pydantic_ai import TextPart, ThinkingPart
from pydantic_ai.exceptions import ModelAPIError, ModelHTTPError
from pydantic_ai.models.batch import BatchRequest

from batchline.providers import _jsonl
from batchline.providers.anthropic import AnthropicProvider
from batchline.providers.anthropic import transport as anthropic_transport
from batchline.providers.anthropic import wire as anthropic
from batchline.providers.base import Snapshot
from batchline.providers.http import ProviderHTTP
from batchline.providers.openai import OpenAIProvider
from batchline.providers.openai import transport as openai_transport
from batchline.providers.openai import wire as openai
from batchline.records import StoredResult
from batchline.results import error_of as _error_of
from batchline.types import BatchError

from .conftest import RECORDED
from .openai_anthropic_helpers import context

OPENAI = RECORDED / "openai"
ANTHROPIC = RECORDED / "anthropic"


def load(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def test_every_recorded_file_is_covered_here() -> None:
    covered = {
        "openai": {
            "batch_cancel_response.json",
            "batch_create_request.json",
            "batch_input.jsonl",
            "batch_output.jsonl",
            "batch_status_sequence.json",
            "error_file_batch_expired_DOCS_EXAMPLE.jsonl",
            "file_object_upload_response.json",
        },
        "anthropic": {
            "batch_create_request.json",
            "message_batch_cancel_response.json",
            "message_batch_status_sequence.json",
            "results_errored_credit_balance.jsonl",
            "results_succeeded.jsonl",
            "results_succeeded_with_thinking.jsonl",
        },
    }
    for provider, names in covered.items():
        assert {p.name for p in (RECORDED / provider).iterdir()} == names


def served(files: dict[str, bytes], answers: dict[str, Any], seen: list[httpx2.Request]) -> httpx2.MockTransport:
    """Answer `METHOD path` from `answers` (JSON) and file downloads from `files` (raw), remembering each request."""

    def handle(request: httpx2.Request) -> httpx2.Response:
        request.read()
        seen.append(request)
        for path, content in files.items():
            if str(request.url).endswith(path):
                return httpx2.Response(200, content=content)
        return httpx2.Response(200, json=answers[f"{request.method} {request.url.path}"])

    return httpx2.MockTransport(handle)


# -- OpenAI ---------------------------------------------------------------------------------------------------------
def test_openai_status_sequence_maps_to_states_and_counts() -> None:
    sequence = [openai.to_snapshot(step["response"]) for step in load(OPENAI / "batch_status_sequence.json")]
    assert [(s.status, s.state, s.total, s.completed, s.failed) for s in sequence] == [
        ("validating", "running", 0, 0, 0),  # OpenAI counts nothing while it validates
        ("in_progress", "running", 3, 0, 0),
        ("in_progress", "running", 3, 1, 0),
        ("finalizing", "running", 3, 3, 0),
        ("completed", "completed", 3, 3, 0),
    ]
    assert sequence[-1].details == {
        "input_file_id": "file-TnjeSoqJGFp7SfehYrEuHH",
        "output_file_id": "file-GykDwPni5UjeQEo2wkgrh7",
    }  # `error_file_id: null`: no error file to read
    assert not any(s.ended for s in sequence[:-1]) and sequence[-1].ended
    cancel = openai.to_snapshot(load(OPENAI / "batch_cancel_response.json"))
    assert (cancel.status, cancel.state, cancel.ended) == ("cancelling", "cancelling", False)


def test_openai_create_speaks_the_recorded_wire_shapes() -> None:
    steps = load(OPENAI / "batch_status_sequence.json")
    seen: list[httpx2.Request] = []
    answers = {
        "POST /v1/files": load(OPENAI / "file_object_upload_response.json"),
        "POST /v1/batches": steps[0]["response"],
        f"GET /v1/batches/{steps[0]['response']['id']}": steps[1]["response"],
    }
    adapter = OpenAIProvider("gpt-3.5-turbo", context())
    adapter._http = ProviderHTTP(
        "openai", *openai_transport.client_config({"OPENAI_API_KEY": "k"}), transport=served({}, answers, seen)
    )
    recorded_input = jsonl(OPENAI / "batch_input.jsonl")
    requests = iter([(line["custom_id"], orjson.dumps(line["body"])) for line in recorded_input])
    snapshot = adapter.create("job-1", 0, requests, 3)

    assert (snapshot.id, snapshot.status, snapshot.total) == (
        "batch_6780bb2f8f6c8190a6c0abfb8502bba6",
        "in_progress",
        3,
    )
    upload, create, _ = seen
    assert b'name="purpose"\r\n\r\nbatch\r\n' in upload.content
    assert int(upload.headers["content-length"]) == len(upload.content)
    uploaded = [orjson.loads(line) for line in upload.content.split(b"\r\n\r\n", 2)[2].splitlines()[:3]]
    assert [{k: v for k, v in line.items() if k != "url"} for line in uploaded] == [
        {k: v for k, v in line.items() if k != "url"} for line in recorded_input
    ]  # the same lines, but for the endpoint: batchline sends Responses API bodies
    assert {line["url"] for line in uploaded} == {"/v1/responses"}
    body, recorded = orjson.loads(create.content), load(OPENAI / "batch_create_request.json")
    assert set(body) == set(recorded) and body["input_file_id"] == recorded["input_file_id"]
    assert body["completion_window"] == "24h" and body["metadata"] == {"batchline_job": "job-1", "batchline_part": "0"}


def test_openai_output_file_streams_into_results_that_decode() -> None:
    recorded = jsonl(OPENAI / "batch_output.jsonl")
    final = openai.to_snapshot(load(OPENAI / "batch_status_sequence.json")[-1]["response"])
    seen: list[httpx2.Request] = []
    files = {"/files/file-GykDwPni5UjeQEo2wkgrh7/content": (OPENAI / "batch_output.jsonl").read_bytes()}
    adapter = OpenAIProvider("gpt-3.5-turbo", context())
    adapter._http = ProviderHTTP(
        "openai", *openai_transport.client_config({"OPENAI_API_KEY": "k"}), transport=served(files, {}, seen)
    )
    results = list(adapter.results(final))

    assert [(cid, status) for cid, status, _ in results] == [("0", "succeeded"), ("1", "succeeded"), ("2", "succeeded")]
    assert [str(r.url) for r in seen] == ["https://api.openai.com/v1/files/file-GykDwPni5UjeQEo2wkgrh7/content"]
    for (custom_id, status, body), line in zip(results, recorded, strict=True):
        assert orjson.loads(body) == line["response"]["body"]  # stored as received
        response = adapter.decode(StoredResult(custom_id, status, body), BatchRequest(custom_id=custom_id, messages=[]))
        choice = line["response"]["body"]["choices"][0]["message"]["content"]
        assert response.parts == [TextPart(content=choice)]
        assert response.model_name == "gpt-3.5-turbo-0125"
        usage = line["response"]["body"]["usage"]
        assert (response.usage.input_tokens, response.usage.output_tokens) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
        )
        # The tracing's usage reader, on the raw body, counts what pydantic-ai's decode counts.
        assert openai.usage_of(body) == (response.usage.input_tokens, response.usage.output_tokens)


def test_openai_error_file_lines_for_unrun_requests_are_expired() -> None:
    lines = jsonl(OPENAI / "error_file_batch_expired_DOCS_EXAMPLE.jsonl")
    results = [openai.result_of(line) for line in lines]
    assert results == [("request-3", "expired", b""), ("request-7", "expired", b"")]
    adapter = OpenAIProvider("gpt-4o-mini")
    with pytest.raises(ModelAPIError, match="expired before the model ran it"):
        adapter.decode(StoredResult(*results[0]), BatchRequest(custom_id="request-3", messages=[]))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (  # a request the API refused: in the error file, `error: null`, the error inside `response.body`
            {
                "custom_id": "r",
                "response": {
                    "status_code": 429,
                    "request_id": "x",
                    "body": {"error": {"message": "Slow down.", "type": "requests", "code": "rate_limit_exceeded"}},
                },
                "error": None,
            },
            BatchError("rate_limit_exceeded", "Slow down."),
        ),
        (  # an error with no response at all
            {"custom_id": "r", "response": None, "error": {"code": "server_error", "message": "Boom."}},
            BatchError("server_error", "Boom."),
        ),
    ],
)
def test_openai_error_lines_decode_into_a_clear_batch_error(line: dict[str, Any], expected: BatchError) -> None:
    custom_id, status, body = openai.result_of(line)
    assert status == "errored"
    with pytest.raises(ModelHTTPError) as raised:
        OpenAIProvider("gpt-4o-mini").decode(
            StoredResult(custom_id, status, body), BatchRequest(custom_id="r", messages=[])
        )
    assert _error_of(raised.value) == expected


def test_openai_failed_batch_gives_each_request_the_reason() -> None:
    failed = dict(load(OPENAI / "batch_status_sequence.json")[0]["response"])
    failed.update(
        status="failed",
        errors={"object": "list", "data": [{"code": "token_limit_exceeded", "message": "Enqueued token limit."}]},
    )
    snapshot = openai.to_snapshot(failed)
    assert (snapshot.state, snapshot.error) == ("failed", "token_limit_exceeded: Enqueued token limit.")
    adapter = OpenAIProvider("gpt-4o-mini")
    status, body = adapter.unrun(snapshot)
    assert orjson.loads(body) == {"status_code": 400, "body": {"errors": failed["errors"]["data"]}}
    with pytest.raises(ModelHTTPError) as raised:
        adapter.decode(StoredResult("r", status, body), BatchRequest(custom_id="r", messages=[]))
    assert _error_of(raised.value) == BatchError("token_limit_exceeded", "Enqueued token limit.")
    assert openai.to_snapshot({**failed, "status": "expired", "errors": None}).state == "expired"
    assert adapter.unrun(Snapshot("b", "expired", "expired")) == ("expired", b"")
    assert adapter.unrun(Snapshot("b", "cancelled", "cancelled")) == ("canceled", b"")


# -- Anthropic ------------------------------------------------------------------------------------------------------
def test_anthropic_status_sequence_maps_to_states_and_counts() -> None:
    sequence = [
        anthropic.to_snapshot(step["response"]) for step in load(ANTHROPIC / "message_batch_status_sequence.json")
    ]
    assert [(s.status, s.state, s.total, s.completed, s.failed) for s in sequence] == [
        ("in_progress", "running", 3, 0, 0),
        ("ended", "completed", 3, 3, 0),
    ]
    assert sequence[0].details == {}
    assert sequence[1].details == {
        "results_url": "https://api.anthropic.com/v1/messages/batches/msgbatch_01MxdL3LT4Dizo9t3j6FY9Ap/results"
    }
    cancel = anthropic.to_snapshot(load(ANTHROPIC / "message_batch_cancel_response.json"))
    assert (cancel.status, cancel.state, cancel.total) == ("canceling", "cancelling", 3)
    ended_cancelled = {**load(ANTHROPIC / "message_batch_cancel_response.json"), "processing_status": "ended"}
    ended_cancelled["request_counts"] = {"processing": 0, "succeeded": 1, "errored": 0, "canceled": 2, "expired": 0}
    assert anthropic.to_snapshot(ended_cancelled).state == "cancelled"


def test_anthropic_create_speaks_the_recorded_wire_shape() -> None:
    recorded = load(ANTHROPIC / "batch_create_request.json")
    seen: list[httpx2.Request] = []
    answers = {"POST /v1/messages/batches": load(ANTHROPIC / "message_batch_status_sequence.json")[0]["response"]}
    adapter = AnthropicProvider("claude-3-5-sonnet-20241022", context())
    config = anthropic_transport.client_config({"ANTHROPIC_API_KEY": "k"})
    adapter._http = ProviderHTTP("anthropic", *config, transport=served({}, answers, seen))
    requests = iter([(item["custom_id"], orjson.dumps(item["params"])) for item in recorded["requests"]])
    snapshot = adapter.create("job", 0, requests, 3)

    assert (snapshot.id, snapshot.state, snapshot.total) == ("msgbatch_01MxdL3LT4Dizo9t3j6FY9Ap", "running", 3)
    [create] = seen
    assert orjson.loads(create.content) == recorded
    assert create.headers["anthropic-version"] == "2023-06-01" and create.headers["x-api-key"] == "k"


def anthropic_results(path: Path) -> tuple[AnthropicProvider, list[tuple[str, str, bytes]], list[httpx2.Request]]:
    ended = anthropic.to_snapshot(load(ANTHROPIC / "message_batch_status_sequence.json")[-1]["response"])
    seen: list[httpx2.Request] = []
    adapter = AnthropicProvider("claude-3-5-sonnet-20241022", context())
    config = anthropic_transport.client_config({"ANTHROPIC_API_KEY": "k"})
    adapter._http = ProviderHTTP("anthropic", *config, transport=served({"/results": path.read_bytes()}, {}, seen))
    return adapter, list(adapter.results(ended)), seen


def test_anthropic_results_stream_from_results_url_and_decode() -> None:
    adapter, results, seen = anthropic_results(ANTHROPIC / "results_succeeded.jsonl")
    recorded = jsonl(ANTHROPIC / "results_succeeded.jsonl")
    assert [str(r.url) for r in seen] == [
        "https://api.anthropic.com/v1/messages/batches/msgbatch_01MxdL3LT4Dizo9t3j6FY9Ap/results"
    ]
    assert [(cid, status) for cid, status, _ in results] == [("0", "succeeded"), ("1", "succeeded"), ("2", "succeeded")]
    for (custom_id, status, body), line in zip(results, recorded, strict=True):
        assert orjson.loads(body) == line["result"]  # stored as received
        response = adapter.decode(StoredResult(custom_id, status, body), BatchRequest(custom_id=custom_id, messages=[]))
        message = line["result"]["message"]
        assert response.parts == [TextPart(content=message["content"][0]["text"])]
        assert response.model_name == "claude-3-5-sonnet-20241022"
        assert (response.usage.input_tokens, response.usage.output_tokens) == (
            message["usage"]["input_tokens"],
            message["usage"]["output_tokens"],
        )
        assert anthropic.usage_of(body) == (response.usage.input_tokens, response.usage.output_tokens)


def test_anthropic_thinking_result_decodes_with_its_signature() -> None:
    adapter, [(custom_id, status, body)], _ = anthropic_results(ANTHROPIC / "results_succeeded_with_thinking.jsonl")
    [line] = jsonl(ANTHROPIC / "results_succeeded_with_thinking.jsonl")
    thinking, text = line["result"]["message"]["content"]
    response = adapter.decode(StoredResult(custom_id, status, body), BatchRequest(custom_id=custom_id, messages=[]))
    first, second = response.parts
    assert isinstance(first, ThinkingPart) and first.content == thinking["thinking"]
    assert first.signature == thinking["signature"]
    assert isinstance(second, TextPart) and second.content == text["text"]
    assert anthropic.usage_of(body) == (response.usage.input_tokens, response.usage.output_tokens)


def test_anthropic_errored_result_decodes_into_a_clear_batch_error() -> None:
    adapter, [(custom_id, status, body)], _ = anthropic_results(ANTHROPIC / "results_errored_credit_balance.jsonl")
    assert (custom_id, status) == ("999974", "errored")
    assert orjson.loads(body)["error"]["error"]["type"] == "invalid_request_error"  # nested twice, kept as is
    with pytest.raises(ModelHTTPError) as raised:
        adapter.decode(StoredResult(custom_id, status, body), BatchRequest(custom_id=custom_id, messages=[]))
    assert raised.value.status_code == 400
    assert _error_of(raised.value) == BatchError(
        "invalid_request_error",
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or "
        "purchase credits.",
    )


@pytest.mark.parametrize("kind", ["canceled", "expired"])
def test_anthropic_unrun_results_keep_their_kind(kind: str) -> None:
    assert anthropic.result_of({"custom_id": "a", "result": {"type": kind}}) == ("a", kind, b"")
    with pytest.raises(ModelAPIError):
        AnthropicProvider("claude-sonnet-4-5").decode(
            StoredResult("a", kind, b""), BatchRequest(custom_id="a", messages=[])
        )


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_lines_split_across_download_chunks_are_joined(size: int) -> None:
    data = (ANTHROPIC / "results_succeeded_with_thinking.jsonl").read_bytes().strip()
    text = b"\n\n" + data + b"\r\n  \n" + data  # blank lines around, CRLF, and no newline at the end
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    response = httpx2.Response(200, content=iter(chunks))
    lines = list(_jsonl.iter_lines(response))
    assert [orjson.loads(line) for line in lines] == [orjson.loads(data)] * 2


def test_a_long_retry_after_is_left_to_the_task_countdown_not_slept_in_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import httpx2

    from batchline.errors import TransientProviderError
    from batchline.providers.http import ProviderHTTP

    calls: list[int] = []

    def busy(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        return httpx2.Response(429, headers={"retry-after": "120"}, json={"error": {"message": "slow down"}})

    http = ProviderHTTP("openai", "http://provider.test/v1", {}, transport=httpx2.MockTransport(busy))
    slept: list[float] = []
    monkeypatch.setattr("batchline.providers.http.time.sleep", slept.append)
    try:
        http.request("GET", "/batches/b1")
    except TransientProviderError as error:
        assert error.retry_after == 120.0
    else:
        raise AssertionError("expected a TransientProviderError")
    assert slept == [] and len(calls) == 1  # asked once, and the worker did not wait

"""The recorded Gemini payloads (fixtures/recorded/gemini) parse into the right states, counts and results.

They are read two ways: by the wire functions directly, and through the adapter's own `status` and `results`, served
over a mock HTTP transport exactly as recorded.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import httpx2
import pytest
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import TextPart
from pydantic_ai.models.batch import BatchRequest

from batchline.config import Settings
from batchline.providers import ProviderContext
from batchline.providers.base import UNUSABLE
from batchline.providers.gemini import GeminiProvider, wire
from batchline.providers.gemini.api import GeminiAPI
from batchline.records import StoredResult
from batchline.store import Store

from .conftest import RECORDED as ALL_RECORDED

RECORDED = ALL_RECORDED / "gemini"
PENDING = json.loads((RECORDED / "batch_pending.json").read_text())
SUCCEEDED = json.loads((RECORDED / "batch_succeeded_inlined.json").read_text())
VERTEX_LINES = (RECORDED / "vertex_batch_prediction_output.jsonl").read_bytes()
CAPITALS = [
    "The capital of France is **Paris**.",
    "The capital of Japan is **Tokyo**.",
    "The capital of Brazil is **Brasília**.",
]


def _request(custom_id: str) -> BatchRequest:
    return BatchRequest(custom_id=custom_id, messages=[])


@pytest.fixture
def adapter(monkeypatch: pytest.MonkeyPatch) -> Iterator[GeminiProvider]:
    monkeypatch.setenv("GEMINI_API_KEY", "recorded-key")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "https://gemini.example")
    context = ProviderContext(Settings(), Store(fakeredis.FakeRedis(), "rec:").scratch("gemini"))
    yield GeminiProvider("gemini-2.5-flash-lite", context)


def _serve(adapter: GeminiProvider, routes: dict[str, tuple[int, bytes]]) -> list[str]:
    """Answer the adapter's calls from `routes` (path -> status, body); the paths asked are returned as they come."""
    asked: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.headers["x-goog-api-key"] == "recorded-key" and "key=" not in str(request.url)
        asked.append(request.url.path)
        status, body = routes.get(request.url.path, (404, b'{"error": {"code": 404, "message": "not found"}}'))
        return httpx2.Response(status, content=body)

    adapter.api = GeminiAPI(transport=httpx2.MockTransport(handler))
    return asked


def test_a_pending_batch_is_running_with_string_counts() -> None:
    snapshot = wire.snapshot_of(PENDING)
    assert snapshot.id == "batches/tti3ik8qob66dxcvynlg5swnutyntbi926ac"
    assert (snapshot.status, snapshot.state, snapshot.ended) == ("BATCH_STATE_PENDING", "running", False)
    assert (snapshot.total, snapshot.completed, snapshot.failed) == (3, 0, 0)  # "3", and zeros left out
    assert snapshot.error is None and snapshot.details == {"display_name": "capitals-batch"}


def test_a_succeeded_inline_batch_is_completed_and_its_responses_are_matched_by_position() -> None:
    snapshot = wire.snapshot_of(SUCCEEDED)
    assert (snapshot.status, snapshot.state, snapshot.total, snapshot.completed) == (
        "BATCH_STATE_SUCCEEDED",
        "completed",
        3,
        3,
    )
    items = wire.inline_responses(SUCCEEDED)
    assert items is not None and all("metadata" not in item for item in items)  # no key: the order is the link
    results = list(wire.inline_results(items, ["fr", "jp", "br"]))
    assert [(cid, status) for cid, status, _, _ in results] == [
        ("fr", "succeeded"),
        ("jp", "succeeded"),
        ("br", "succeeded"),
    ]
    texts = [json.loads(body)["candidates"][0]["content"]["parts"][0]["text"] for _, _, body, _ in results]
    assert texts == CAPITALS


def test_the_adapter_reads_the_recorded_inline_batch_through_its_stored_order(adapter: GeminiProvider) -> None:
    # As if batchline had created it for job J, part 0: the order it sent is in Redis, and the name says whose it is.
    operation = copy.deepcopy(SUCCEEDED)
    operation["metadata"]["displayName"] = wire.display_name("J", 0)
    adapter.context.scratch.redis.rpush("rec:gemini:J:0:ids", "fr", "jp", "br")
    name = operation["name"]
    asked = _serve(adapter, {f"/v1beta/{name}": (200, json.dumps(operation).encode())})
    snapshot = adapter.status(name)
    assert snapshot.state == "completed" and snapshot.details["display_name"] == "batchline:J:0"
    results = list(adapter.results(snapshot))
    assert [cid for cid, _, _ in results] == ["fr", "jp", "br"]
    responses = [adapter.decode(StoredResult(cid, status, body), _request(cid)) for cid, status, body in results]
    assert [r.text for r in responses] == CAPITALS
    assert [r.model_name for r in responses] == ["gemini-2.5-flash-lite"] * 3
    assert [(r.usage.input_tokens, r.usage.output_tokens) for r in responses] == [(8, 8), (8, 8), (8, 9)]
    # The tracing's usage reader, on the raw bodies, counts what pydantic-ai's decode counts, and so do the tokens
    # the adapter reads with each response, which the fetch stores without parsing the body again.
    assert [wire.usage_of(body) for _, _, body in results] == [(8, 8), (8, 8), (8, 9)]
    assert [tokens for *_, tokens in adapter.read_results(snapshot)] == [(8, 8), (8, 8), (8, 9)]
    assert asked == [f"/v1beta/{name}"] * 3


def test_an_inline_batch_whose_order_is_lost_is_never_guessed(adapter: GeminiProvider) -> None:
    operation = copy.deepcopy(SUCCEEDED)
    operation["metadata"]["displayName"] = wire.display_name("gone", 4)
    name = operation["name"]
    _serve(adapter, {f"/v1beta/{name}": (200, json.dumps(operation).encode())})
    # Each is unusable (the pipeline counts it as an anomaly and gives each request the batch's outcome).
    assert [cid for cid, _, _ in adapter.results(adapter.status(name))] == [UNUSABLE] * 3


def test_a_batch_made_elsewhere_names_its_inline_responses_by_position(adapter: GeminiProvider) -> None:
    name = SUCCEEDED["name"]
    _serve(adapter, {f"/v1beta/{name}": (200, json.dumps(SUCCEEDED).encode())})
    assert [cid for cid, _, _ in adapter.results(adapter.status(name))] == ["0", "1", "2"]


def test_succeeded_with_every_request_failed_is_reported_as_failed() -> None:
    operation: dict[str, Any] = copy.deepcopy(SUCCEEDED)
    operation["metadata"]["batchStats"] = {"requestCount": "3", "failedRequestCount": "3"}
    error = {"error": {"code": 3, "message": "Request contains an invalid argument."}}
    operation["response"]["inlinedResponses"]["inlinedResponses"] = [error] * 3
    snapshot = wire.snapshot_of(operation)
    assert (snapshot.status, snapshot.state, snapshot.failed, snapshot.completed) == (
        "BATCH_STATE_SUCCEEDED",
        "failed",
        3,
        0,
    )
    assert snapshot.error is not None and "every one of its 3 requests failed" in snapshot.error
    results = list(wire.inline_results(wire.inline_responses(operation) or [], ["a", "b", "c"]))
    assert [(cid, status, tokens) for cid, status, _, tokens in results] == [
        ("a", "errored", None),
        ("b", "errored", None),
        ("c", "errored", None),
    ]


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("BATCH_STATE_PENDING", "running"),
        ("BATCH_STATE_RUNNING", "running"),
        ("BATCH_STATE_SUCCEEDED", "completed"),
        ("BATCH_STATE_FAILED", "failed"),
        ("BATCH_STATE_CANCELLED", "cancelled"),
        ("BATCH_STATE_EXPIRED", "expired"),
        ("JOB_STATE_SUCCEEDED", "completed"),
        ("BATCH_STATE_SOMETHING_NEW", "running"),
    ],
)
def test_every_state_maps_onto_batchlines(state: str, expected: str) -> None:
    operation = copy.deepcopy(PENDING)
    operation["metadata"]["state"] = state
    assert wire.snapshot_of(operation).state == expected


def test_a_failed_batch_carries_its_operation_error() -> None:
    operation = copy.deepcopy(PENDING)
    operation["metadata"]["state"] = "BATCH_STATE_FAILED"
    operation.update(done=True, error={"code": 3, "message": "Input file is invalid."})
    snapshot = wire.snapshot_of(operation)
    assert snapshot.state == "failed" and snapshot.error == "INVALID_ARGUMENT: Input file is invalid."


def test_recorded_result_lines_out_of_order_are_matched_by_their_own_ids(adapter: GeminiProvider) -> None:
    lines = [wire.result_line(line) for line in VERTEX_LINES.splitlines()]
    assert [(cid, status) for cid, status, _, _ in lines] == [
        ("2", "succeeded"),
        ("1", "succeeded"),
        ("0", "succeeded"),
    ]
    tokens = [tokens for *_, tokens in lines]
    assert tokens == [wire.usage_of(body) for _, _, body, _ in lines] and (0, 0) not in tokens
    # The same file as a batch's responsesFile, streamed by the adapter and decoded.
    operation = copy.deepcopy(SUCCEEDED)
    del operation["response"]["inlinedResponses"]
    operation["response"]["responsesFile"] = "files/batch-recorded"
    name = operation["name"]
    _serve(
        adapter,
        {
            f"/v1beta/{name}": (200, json.dumps(operation).encode()),
            "/v1beta/files/batch-recorded:download": (200, VERTEX_LINES),
        },
    )
    snapshot = adapter.status(name)
    assert snapshot.details["responses_file"] == "files/batch-recorded"
    decoded = {
        cid: adapter.decode(StoredResult(cid, s, body), _request(cid)) for cid, s, body in adapter.results(snapshot)
    }
    assert sorted(decoded) == ["0", "1", "2"]
    assert decoded["0"].text.startswith('"Spaghetti" refers to a long, thin, cylindrical pasta.')
    assert decoded["1"].text.startswith("Sushi is a Japanese dish")
    assert decoded["2"].text.startswith("Ramen is a Japanese noodle soup.")
    assert isinstance(decoded["2"].parts[0], TextPart) and decoded["2"].usage.output_tokens == 177


def test_a_file_result_error_line_decodes_into_the_api_error(adapter: GeminiProvider) -> None:
    line = json.dumps({"key": "k7", "error": {"code": 8, "message": "Resource has been exhausted."}}).encode()
    parsed = wire.result_line(line)
    assert parsed is not None and parsed[:2] == ("k7", "errored")
    assert wire.is_transient(parsed[2]) and not wire.is_transient(b'{"code": 3, "message": "bad"}')
    with pytest.raises(ModelHTTPError) as raised:
        adapter.decode(StoredResult("k7", "errored", parsed[2]), _request("k7"))
    assert raised.value.status_code == 429 and "Resource has been exhausted." in str(raised.value)
    assert adapter.is_transient("errored", parsed[2])
    assert wire.result_line(b'{"key": "x"}')[0] == UNUSABLE and wire.result_line(b"not json")[0] == UNUSABLE


def test_recorded_fixtures_are_the_ones_documented() -> None:
    names = sorted(p.name for p in Path(RECORDED).iterdir())
    assert names == ["batch_pending.json", "batch_succeeded_inlined.json", "vertex_batch_prediction_output.jsonl"]

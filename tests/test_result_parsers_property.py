"""Property tests for what a provider hands back: arbitrary bytes and JSON in results files and status answers.

Whatever the lines, reading them raises nothing but batchline's own errors, stores nothing under an id the part does
not own, and stores no more results than the part has requests. Status answers of any shape give a Snapshot or a
`MalformedAnswer`, never a crash after a batch was created.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import fakeredis
import httpx2
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchline.config import Settings
from batchline.errors import MalformedAnswer, ProviderRejected, TransientProviderError
from batchline.pipeline import Screen
from batchline.providers import ProviderContext, Snapshot
from batchline.providers.anthropic import AnthropicProvider
from batchline.providers.anthropic import wire as anthropic_module
from batchline.providers.base import UNUSABLE
from batchline.providers.gemini import GeminiProvider, wire
from batchline.providers.gemini.api import GeminiAPI
from batchline.providers.http import ProviderHTTP
from batchline.providers.openai import OpenAIProvider
from batchline.providers.openai import wire as openai_module
from batchline.records import RESULT_TAGS
from batchline.store import Store

OWNED = ["q0", "q1", "q2", "bl_x", "12345"]
"""The part's custom_ids; "12345" lets a numeric custom_id in a line try to pass as the string one."""

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
ids = st.sampled_from([*OWNED, "", "q9", "../q0", None, 12345, 0, True, ["q0"], {"id": "q0"}])
"""custom_ids a line may carry: the part's own, others, and values that are not strings at all."""


@st.composite
def result_objects(draw: st.DrawFn) -> dict[str, Any]:
    """Lines shaped like each provider's, with every field free to be wrong."""
    line: dict[str, Any] = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3))
    key = draw(st.sampled_from(["custom_id", "key"]))
    line[key] = draw(ids)
    shape = draw(st.sampled_from(["openai", "anthropic", "gemini", "none"]))
    if shape == "openai":
        line["response"] = {
            "status_code": draw(st.sampled_from([200, 404, 500, "200", None])),
            "body": draw(json_values),
        }
        line["error"] = draw(st.none() | st.fixed_dictionaries({"code": st.sampled_from(["batch_expired", "x"])}))
    elif shape == "anthropic":
        kind = st.sampled_from(["succeeded", "errored", "expired", "canceled", "weird", None])
        line["result"] = draw(st.fixed_dictionaries({"type": kind}) | json_values)
    elif shape == "gemini":
        line[draw(st.sampled_from(["response", "error", "status"]))] = draw(json_values)
    return line


lines = st.one_of(
    st.binary(max_size=40),
    json_values.map(orjson.dumps),
    result_objects().map(orjson.dumps),
)
files = st.lists(lines, max_size=12).map(lambda items: b"\n".join(items))


def _store() -> Store:
    return Store(fakeredis.FakeRedis(), prefix="p:", ttl_seconds=60)


def _context(owner: str) -> ProviderContext:
    return ProviderContext(Settings(), _store().scratch(owner))


def _serve(body: bytes, operation: dict[str, Any] | None = None) -> httpx2.MockTransport:
    def answer(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.startswith("/v1beta/batches/") and operation is not None:
            return httpx2.Response(200, content=orjson.dumps(operation))
        return httpx2.Response(200, content=body)

    return httpx2.MockTransport(answer)


def _openai(body: bytes) -> Iterator[tuple[str, str, bytes]]:
    adapter = OpenAIProvider("gpt-4o-mini", _context("openai"))
    adapter._http = ProviderHTTP("openai", "https://api.openai.com/v1", {}, transport=_serve(body))
    ended = Snapshot("batch_1", "completed", "completed", details={"output_file_id": "file-1"})
    return adapter.results(ended)


def _anthropic(body: bytes) -> Iterator[tuple[str, str, bytes]]:
    adapter = AnthropicProvider("claude-sonnet-4-5", _context("anthropic"))
    adapter._http = ProviderHTTP("anthropic", "https://api.anthropic.com", {}, transport=_serve(body))
    url = "https://api.anthropic.com/v1/messages/batches/msgbatch_1/results"
    ended = Snapshot("msgbatch_1", "ended", "completed", details={"results_url": url})
    return adapter.results(ended)


def _gemini(body: bytes) -> Iterator[tuple[str, str, bytes]]:
    adapter = GeminiProvider("gemini-2.5-flash", _context("gemini"))
    operation = {"name": "batches/b1", "metadata": {"state": "BATCH_STATE_SUCCEEDED"}}
    operation["response"] = {"responsesFile": "files/f1"}
    adapter.api = GeminiAPI(transport=_serve(body, operation))
    return adapter.results(Snapshot("batches/b1", "BATCH_STATE_SUCCEEDED", "completed"))


READERS: dict[str, Callable[[bytes], Iterator[tuple[str, str, bytes]]]] = {
    "openai": _openai,
    "anthropic": _anthropic,
    "gemini": _gemini,
}


@pytest.mark.parametrize("provider", list(READERS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=files)
def test_any_results_file_stores_only_the_parts_own_ids_once_each(provider: str, body: bytes) -> None:
    store = _store()
    screen = Screen(set(OWNED))
    with mock.patch.dict(os.environ, {"GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": "https://gemini.example"}):
        stored = store.add_results("J", screen(READERS[provider](body)))
    assert screen.error is None or isinstance(screen.error, TransientProviderError | ProviderRejected)
    kept = {k.decode() for k in store.redis.hkeys("p:job:J:res")}  # type: ignore[union-attr]
    assert kept <= set(OWNED)
    assert stored == len(kept) <= len(OWNED)
    counts = store.job("J")
    assert (0 if counts is None else counts.succeeded + counts.failed) == stored


@given(line=json_values | result_objects())
def test_a_parsed_line_is_a_result_or_unusable(line: Any) -> None:
    for custom_id, status, _ in (openai_module.result_of(line), anthropic_module.result_of(line)):
        assert isinstance(custom_id, str)
        assert custom_id == UNUSABLE or (status in RESULT_TAGS and custom_id == line.get("custom_id"))


@given(line=lines)
def test_a_gemini_file_line_is_a_result_or_unusable(line: bytes) -> None:
    custom_id, status, _, _ = wire.result_line(line)
    assert custom_id == UNUSABLE or (isinstance(custom_id, str) and status in RESULT_TAGS)


@given(items=st.lists(json_values | result_objects(), max_size=6), known=st.booleans())
def test_inline_responses_are_matched_only_to_ids_sent(items: list[Any], known: bool) -> None:
    sent = OWNED[: len(items)] if known else None
    for custom_id, *_ in wire.inline_results(items, sent):
        assert custom_id == UNUSABLE or custom_id in (sent or [])


@given(answer=json_values | result_objects())
def test_a_status_answer_of_any_shape_is_a_snapshot_or_malformed(answer: Any) -> None:
    for read in (
        openai_module.to_snapshot,
        anthropic_module.to_snapshot,
        lambda a: wire.snapshot_of(a if isinstance(a, dict) else {}),
        lambda a: openai_module.created_snapshot(orjson.dumps(a)),
        lambda a: anthropic_module.created_snapshot(orjson.dumps(a)),
    ):
        try:
            snapshot = read(answer)
        except MalformedAnswer:
            continue
        assert isinstance(snapshot.id, str) and snapshot.id
        assert min(snapshot.total, snapshot.completed, snapshot.failed) >= 0

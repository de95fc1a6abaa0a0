"""The fast Responses decoder gives exactly pydantic-ai's `ModelResponse`, or steps aside.

Differential: every body below is decoded twice, by pydantic-ai's own `OpenAIResponsesModel.batch_decode` and by
batchline (`OpenAIProvider.decode`, whose fast path is `openai/fastdecode.fast_decode`). What is compared: the whole
`ModelResponse` with `==` (parts, usage, model name, response id, provider name and URL, canonical system, finish
reason, state, provider details, ...), after setting `timestamp` to one fixed value on both, on the response and on any
part that has one: pydantic-ai stamps them with the time of decoding (`_now_utc()` in `_process_response`, and the
return part of a built-in tool), so two decodes of one body never agree on them. Nothing else is normalised. Errors are
compared by type and message.

Bodies: emulator answers to requests pydantic-ai encoded (text, tool calls, structured output by tool and by JSON
schema, several sizes of usage), the emulator's error bodies, variations of them that must take pydantic-ai's path
(reasoning, refusal, citations, logprobs, errors, unknown usage fields) or that exercise the fast path's own branches
(incomplete, empty text, no usage, cache writes), and every line of the recorded OpenAI files in
tests/fixtures/recorded/openai.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import BaseModel
from pydantic_ai.messages import ModelRequest, ModelResponse, ToolCallPart, ToolReturnPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.batch import BatchRequest, BatchResult
from pydantic_ai.tools import ToolDefinition

from batchline.emulator.answers_common import AnswerContext
from batchline.emulator.answers_openai import ERROR_KINDS, answer, error_response
from batchline.providers import get_provider
from batchline.providers.openai.codec import codec_model
from batchline.providers.openai.fastdecode import fast_decode
from batchline.providers.openai.wire import result_of
from batchline.records import StoredResult

from .conftest import RECORDED

MODEL = "gpt-4o-mini"
FIXTURES = RECORDED / "openai"
FIXED = datetime(2000, 1, 1, tzinfo=UTC)
CTX = AnswerContext("batch_fastdecode", 1_736_489_777, "Mock response for {custom_id} from {model}")


class City(BaseModel):
    name: str
    population: int


WEATHER = ToolDefinition(
    name="get_weather",
    description="The weather in a city.",
    parameters_json_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
)


def _params() -> dict[str, ModelRequestParameters]:
    tool_output = ModelRequestParameters(
        output_mode="tool",
        output_tools=[
            ToolDefinition(
                name="final_result",
                parameters_json_schema=City.model_json_schema(),
                kind="output",
            )
        ],
        allow_text_output=False,
    )
    return {
        "text": ModelRequestParameters(),
        "tools": ModelRequestParameters(function_tools=[WEATHER]),
        "tool_output": tool_output,
    }


PARAMS = _params()
MESSAGES: dict[str, list[Any]] = {
    "short": [ModelRequest.user_text_prompt("What is 2 + 2?")],
    "weather": [ModelRequest.user_text_prompt("What is the weather in Paris? Use get_weather.")],
    "after_tool": [
        ModelRequest.user_text_prompt("What is the weather in Paris?"),
        ModelResponse(parts=[ToolCallPart("get_weather", {"city": "Paris"}, tool_call_id="call_1")]),
        ModelRequest(parts=[ToolReturnPart("get_weather", "sunny", tool_call_id="call_1")]),
    ],
    "long": [ModelRequest.user_text_prompt("Tell me a story. " * 200)],
}


def _request(custom_id: str, params: str, settings: dict[str, Any] | None = None) -> BatchRequest:
    return BatchRequest(
        custom_id=custom_id,
        messages=[],
        model_request_parameters=PARAMS[params],
        model_settings=settings,  # type: ignore[arg-type]
    )


def _encoded_body(messages: list[Any], params: str, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    provider = get_provider(f"openai:{MODEL}")
    request = BatchRequest(
        custom_id="x",
        messages=messages,
        model_request_parameters=PARAMS[params],
        model_settings=settings,  # type: ignore[arg-type]
    )
    body: dict[str, Any] = orjson.loads(provider.encode(request).body)
    return body


def _json_schema_body() -> dict[str, Any]:
    body = _encoded_body(MESSAGES["short"], "text")
    body["text"] = {"format": {"type": "json_schema", "name": "City", "schema": City.model_json_schema()}}
    return body


def emulator_answers() -> list[tuple[str, dict[str, Any], str]]:
    """(name, Responses body, params key) from the emulator, for requests pydantic-ai encoded."""
    cases = [
        ("text", _encoded_body(MESSAGES["short"], "text"), "text"),
        ("text_long_prompt", _encoded_body(MESSAGES["long"], "text"), "text"),
        ("tool_call", _encoded_body(MESSAGES["weather"], "tools"), "tools"),
        ("after_tool", _encoded_body(MESSAGES["after_tool"], "tools"), "tools"),
        ("tool_output", _encoded_body(MESSAGES["short"], "tool_output"), "tool_output"),
        ("json_schema", _json_schema_body(), "text"),
    ]
    return [(name, answer("/v1/responses", body, f"cid-{name}", CTX), params) for name, body, params in cases]


def _variants() -> list[tuple[str, dict[str, Any], str]]:
    base = answer("/v1/responses", _encoded_body(MESSAGES["short"], "text"), "cid-v", CTX)
    tool = answer("/v1/responses", _encoded_body(MESSAGES["weather"], "tools"), "cid-t", CTX)
    out: list[tuple[str, dict[str, Any], str]] = []

    def variant(name: str, change: Any, source: dict[str, Any] = base, params: str = "text") -> None:
        body = copy.deepcopy(source)
        change(body)
        out.append((name, body, params))

    text = base["output"][0]["content"][0]
    variant("incomplete", lambda b: b.update(status="incomplete", incomplete_details={"reason": "max_output_tokens"}))
    variant("incomplete_no_reason", lambda b: b.update(status="incomplete", incomplete_details={}))
    variant("in_progress", lambda b: b.update(status="in_progress"))
    variant("no_status", lambda b: b.pop("status"))
    variant("no_service_tier", lambda b: b.update(service_tier=None))
    variant("created_zero", lambda b: b.update(created_at=0))
    variant("created_float", lambda b: b.update(created_at=1_736_489_777.25))
    variant("empty_text", lambda b: b["output"][0]["content"][0].update(text=""))
    variant("two_texts", lambda b: b["output"][0]["content"].append({**text, "text": "and more"}))
    variant("two_messages", lambda b: b["output"].append({**b["output"][0], "id": "msg_2"}))
    variant("text_and_tool", lambda b: b["output"].extend(tool["output"]), params="tools")
    variant("no_output", lambda b: b.update(output=[]))
    variant("no_usage", lambda b: b.update(usage=None))
    variant("usage_absent", lambda b: b.pop("usage"))
    variant("usage_cached", lambda b: b["usage"]["input_tokens_details"].update(cached_tokens=7))
    variant(
        "usage_cache_write",
        lambda b: b["usage"]["input_tokens_details"].update(cached_tokens=3, cache_write_tokens=11),
    )
    variant("usage_reasoning", lambda b: b["usage"]["output_tokens_details"].update(reasoning_tokens=40))
    variant("usage_no_details", lambda b: b["usage"].update(input_tokens_details=None, output_tokens_details=None))
    variant(
        "usage_details_absent",
        lambda b: [b["usage"].pop("input_tokens_details"), b["usage"].pop("output_tokens_details")],
    )
    variant("usage_unknown_key", lambda b: b["usage"].update(speculative_tokens=5))
    variant("tool_no_id", lambda b: b["output"][0].pop("id"), source=tool, params="tools")
    variant("tool_namespace", lambda b: b["output"][0].update(namespace="ns"), source=tool, params="tools")
    # Shapes that take pydantic-ai's path.
    variant(
        "reasoning",
        lambda b: b["output"].insert(0, {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": None}),
    )
    variant(
        "refusal",
        lambda b: b["output"][0].update(content=[{"type": "refusal", "refusal": "I cannot help with that."}]),
    )
    variant(
        "citation",
        lambda b: b["output"][0]["content"][0].update(
            annotations=[
                {"type": "url_citation", "start_index": 0, "end_index": 4, "url": "https://a.example", "title": "A"}
            ]
        ),
    )
    variant(
        "logprobs",
        lambda b: b["output"][0]["content"][0].update(
            logprobs=[{"token": "Mock", "bytes": [77], "logprob": -0.1, "top_logprobs": []}]
        ),
    )
    variant("phase", lambda b: b["output"][0].update(phase="final_answer"))
    variant("background", lambda b: b.update(background=True, status="queued"))
    variant("conversation", lambda b: b.update(conversation={"id": "conv_1"}))
    variant("response_error", lambda b: b.update(error={"code": "server_error", "message": "The model failed."}))
    variant(
        "web_search",
        lambda b: b["output"].insert(
            0,
            {
                "id": "ws_1",
                "type": "web_search_call",
                "status": "completed",
                "action": {"type": "search", "query": "q"},
            },
        ),
    )
    return out


def _stored(custom_id: str, status: str, body: bytes) -> StoredResult:
    return StoredResult(custom_id, status, body)


def _reference(result: StoredResult, request: BatchRequest) -> ModelResponse | Exception:
    batch_result = BatchResult(
        custom_id=result.custom_id,
        status=result.status,  # type: ignore[arg-type]
        body=result.body.decode() if result.body else None,
    )
    try:
        return codec_model(MODEL).batch_decode(batch_result, request)
    except Exception as error:
        return error


def _ours(result: StoredResult, request: BatchRequest) -> ModelResponse | Exception:
    try:
        return get_provider(f"openai:{MODEL}").decode(result, request)
    except Exception as error:
        return error


def _same(ours: ModelResponse | Exception, reference: ModelResponse | Exception) -> None:
    if isinstance(reference, Exception):
        assert isinstance(ours, Exception), f"pydantic-ai raised {reference!r}, batchline answered {ours!r}"
        assert type(ours) is type(reference)
        assert str(ours) == str(reference)
        return
    assert isinstance(ours, ModelResponse), f"batchline raised {ours!r}"
    mine, theirs = _normalised(ours), _normalised(reference)
    assert len(mine.parts) == len(theirs.parts)
    for index, (part, want) in enumerate(zip(mine.parts, theirs.parts, strict=True)):
        assert part == want, f"part {index}"
    assert mine == theirs


def _normalised(response: ModelResponse) -> ModelResponse:
    """`timestamp` set to one value, on the response and on any part that has one (a built-in tool's return part)."""
    parts = [dataclasses.replace(p, timestamp=FIXED) if hasattr(p, "timestamp") else p for p in response.parts]
    return dataclasses.replace(response, timestamp=FIXED, parts=parts)


def test_pydantic_ai_differs_only_in_timestamp_between_two_decodes() -> None:
    """The premise of the normalisation: decoding one body twice with pydantic-ai changes `timestamp` only."""
    name, body, params = emulator_answers()[0]
    result = _stored(name, "succeeded", orjson.dumps(body))
    first, second = _reference(result, _request(name, params)), _reference(result, _request(name, params))
    assert isinstance(first, ModelResponse) and isinstance(second, ModelResponse)
    assert _normalised(first) == _normalised(second)


@pytest.mark.parametrize(("name", "body", "params"), emulator_answers(), ids=lambda v: v if isinstance(v, str) else "")
def test_emulator_answers_take_the_fast_path_and_match(name: str, body: dict[str, Any], params: str) -> None:
    raw = orjson.dumps(body)
    request = _request(name, params)
    assert fast_decode(codec_model(MODEL), raw, request) is not None, "an emulator answer should be a common shape"
    result = _stored(name, "succeeded", raw)
    _same(_ours(result, request), _reference(result, request))


FAST = {
    "incomplete", "incomplete_no_reason", "in_progress", "no_status", "no_service_tier", "created_zero",
    "created_float", "empty_text", "two_texts", "two_messages", "text_and_tool", "no_output", "no_usage",
    "usage_absent", "usage_cached", "usage_cache_write", "usage_reasoning", "usage_no_details",
    "usage_details_absent", "tool_no_id",
}  # fmt: skip


@pytest.mark.parametrize(("name", "body", "params"), _variants(), ids=lambda v: v if isinstance(v, str) else "")
def test_variants_match(name: str, body: dict[str, Any], params: str) -> None:
    raw = orjson.dumps(body)
    request = _request(name, params)
    taken = fast_decode(codec_model(MODEL), raw, request) is not None
    assert taken == (name in FAST), f"{name}: fast path taken={taken}"
    result = _stored(name, "succeeded", raw)
    _same(_ours(result, request), _reference(result, request))


@pytest.mark.parametrize(
    "settings",
    [
        None,
        {"temperature": 0.2, "max_tokens": 50},
        {"openai_include_raw_annotations": True},
        {"openai_transport": "http"},
    ],
)
def test_settings_do_not_change_the_answer(settings: dict[str, Any] | None) -> None:
    for name, body, params in emulator_answers()[:3]:
        result = _stored(name, "succeeded", orjson.dumps(body))
        request = _request(name, params, settings)
        _same(_ours(result, request), _reference(result, request))


@pytest.mark.parametrize("kind", sorted(ERROR_KINDS))
def test_error_bodies_match(kind: str) -> None:
    status, body = error_response(kind, None)
    line = {"custom_id": f"err-{kind}", "response": {"status_code": status, "body": body}, "error": None}
    custom_id, result_status, stored = result_of(line)
    assert result_status == "errored"
    result = _stored(custom_id, result_status, stored)
    request = _request(custom_id, "text")
    _same(_ours(result, request), _reference(result, request))


def _fixture_lines() -> list[dict[str, Any]]:
    lines = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        if path.name == "batch_input.jsonl":
            continue
        lines += [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return lines


def test_recorded_fixtures_exist() -> None:
    assert len(_fixture_lines()) >= 5


@pytest.mark.parametrize("line", _fixture_lines(), ids=lambda line: str(line.get("custom_id")))
def test_recorded_fixture_lines(line: dict[str, Any]) -> None:
    """The recorded files hold chat.completion bodies and an expired error file: the fast path is not theirs (it
    answers None), and batchline decodes them exactly as before (the chat model for chat.completion bodies)."""
    custom_id, status, stored = result_of(line)
    request = _request(custom_id, "text")
    if status == "succeeded":
        assert fast_decode(codec_model(MODEL), stored, request) is None
    result = _stored(custom_id, status, stored)
    ours = _ours(result, request)
    body = orjson.loads(stored) if stored else None
    if isinstance(body, dict) and body.get("object") == "chat.completion":
        from batchline.providers.openai.codec import _chat_completion

        _same(ours, _chat_completion(MODEL, stored))
    else:
        _same(ours, _reference(result, request))

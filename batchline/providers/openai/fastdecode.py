"""A fast `batch_decode` for the common Responses API results: text, function calls and usage.

pydantic-ai's `OpenAIResponsesModel.batch_decode` builds the whole SDK `Response` with the openai SDK's
`model_construct` (pure Python, about 0.3 ms for a short answer), prepares the request's settings again, and then maps
it in `_process_response`. For a body made only of what nearly every batch result holds (`message` items of
`output_text` without annotations or logprobs, `function_call` items, an ordinary `usage`), this module builds the very
same `ModelResponse` straight from the parsed JSON, with pydantic-ai's own helpers for everything that is not plain
copying (finish reason map, state, timestamps, usage extraction through `RequestUsage.extract`, tool call ids).

The helpers and model attributes it reads are pydantic-ai's private ones, all reached through pydantic_private.py:
when one is gone, this answers None for every body (after one warning) and pydantic-ai's public decode takes over.

Anything else (reasoning, refusals, citations, built-in tools, errors, unknown fields in `usage`, a model subclass that
adds provider details, websocket settings) answers None, and the caller decodes with pydantic-ai.
tests/test_fastdecode.py checks, on every recorded fixture and on emulator answers, that both give equal
`ModelResponse`s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic_ai.messages import ModelResponse, ModelResponsePart, TextPart, ToolCallPart
from pydantic_ai.models.batch import BatchRequest
from pydantic_ai.models.openai import OpenAIResponsesModel
from pydantic_ai.usage import RequestUsage

from ...pydantic_private import Helpers, adds_provider_details, helpers, model_facts

_USAGE_KEYS = frozenset(
    {"input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details", "total_tokens"}
)
_TOKEN_KEYS = frozenset({"prompt_tokens", "completion_tokens", "input_tokens", "output_tokens", "total_tokens"})
_ABSENT_OR_NONE = ("conversation", "moderation", "prompt_cache_diagnostics", "error", "tool_usage")
"""Response fields that make pydantic-ai add details or raise when set: such bodies take pydantic-ai's path."""


@dataclass(frozen=True, slots=True)
class _Facts:
    """What `_process_response` reads off the model for every response, read once per model: the provider's base URL
    alone is a string made from the SDK client's URL object each time (2.6 us, twice a result)."""

    model: OpenAIResponsesModel  # held, so the id this is kept under cannot be reused by another model
    provider_name: str
    provider_url: str
    system: str
    canonical_system: Any
    scoped_tool_call_ids: bool


_FACTS: dict[int, _Facts] = {}


def _facts(model: OpenAIResponsesModel) -> _Facts | None:
    facts = _FACTS.get(id(model))
    if facts is None or facts.model is not model:
        if len(_FACTS) >= 256:  # models come from a bounded cache (openai/codec.py); this stays bounded too
            _FACTS.clear()
        read = model_facts(model)  # the same attributes `_process_response` reads
        if read is None:
            return None
        facts = _FACTS[id(model)] = _Facts(
            model,
            read.provider_name,
            read.provider_url,
            model.system,
            read.canonical_system,
            bool(model.profile.get("openai_responses_tool_call_ids_are_response_scoped", False)),
        )
    return facts


def fast_decode(model: OpenAIResponsesModel, body: bytes, request: BatchRequest) -> ModelResponse | None:
    """The `ModelResponse` pydantic-ai's `batch_decode` gives a succeeded result `body`, or None if `body` is not
    one of the common shapes, or pydantic-ai's private helpers are gone (then decode it with pydantic-ai)."""
    found = helpers()
    if found is None:
        return None
    if adds_provider_details(model, found):
        return None  # a subclass adds its own details
    settings = request.model_settings or {}
    if settings.get("openai_transport") is not None:
        return None  # websocket responses echo `store` into the details
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("object") != "response":
        return None
    response_id, model_name, created_at = data.get("id"), data.get("model"), data.get("created_at")
    if not isinstance(response_id, str) or not isinstance(model_name, str):
        return None
    if isinstance(created_at, bool) or not isinstance(created_at, int | float):
        return None
    if any(data.get(key) is not None for key in _ABSENT_OR_NONE) or data.get("background"):
        return None
    status = data.get("status")
    incomplete = data.get("incomplete_details")
    service_tier = data.get("service_tier")
    if not (status is None or isinstance(status, str)) or not (incomplete is None or isinstance(incomplete, dict)):
        return None
    if not (service_tier is None or isinstance(service_tier, str)):
        return None
    output = data.get("output")
    if not isinstance(output, list):
        return None
    facts = _facts(model)
    if facts is None:
        return None
    parts = _parts(found, facts, output, response_id)
    if parts is None:
        return None
    usage = _usage(model.model_name, facts, data.get("usage"))
    if usage is None:
        return None

    provider_details: dict[str, Any] = {}
    finish_reason = None
    raw_finish_reason = incomplete.get("reason") if incomplete is not None else status
    if raw_finish_reason:
        provider_details["finish_reason"] = raw_finish_reason
        finish_reason = found.finish_reasons.get(raw_finish_reason)
    if created_at:
        provider_details["timestamp"] = found.number_to_datetime(created_at)
    if service_tier:
        provider_details["service_tier"] = service_tier
    return ModelResponse(
        parts=parts,
        usage=usage,
        model_name=model_name,
        provider_response_id=response_id,
        timestamp=found.now_utc(),
        provider_name=facts.provider_name,
        provider_url=facts.provider_url,
        canonical_system=facts.canonical_system,
        finish_reason=finish_reason,
        state=found.response_status_to_state(status, background=False),
        # `batch_priced`: batch prices apply.
        provider_details={**provider_details, "processing": "batch"},
    )


def _parts(found: Helpers, facts: _Facts, output: list[Any], response_id: str) -> list[ModelResponsePart] | None:
    system, scoped = facts.system, facts.scoped_tool_call_ids
    parts: list[ModelResponsePart] = []
    for item in output:
        if not isinstance(item, dict):
            return None
        kind = item.get("type")
        if kind == "message":
            item_id, content = item.get("id"), item.get("content")
            if not isinstance(item_id, str) or not isinstance(content, list) or item.get("phase") is not None:
                return None
            if "status" not in item:
                return None
            for piece in content:
                if not isinstance(piece, dict) or piece.get("type") != "output_text":
                    return None  # a refusal, or something newer
                text = piece.get("text")
                if piece.get("annotations") != [] or piece.get("logprobs") or "text" not in piece:
                    return None  # citations and logprobs go to provider details: pydantic-ai maps them
                if text is None or text == "":
                    continue  # no part for empty text, as pydantic-ai
                if not isinstance(text, str):
                    return None
                parts.append(
                    TextPart(
                        text,
                        id=item_id,
                        provider_name=system,
                        provider_details=None,
                        citations=found.map_responses_citations([], text),
                    )
                )
        elif kind == "function_call":
            name, arguments, call_id = item.get("name"), item.get("arguments"), item.get("call_id")
            item_id = item.get("id")
            if not (isinstance(name, str) and isinstance(arguments, str) and isinstance(call_id, str)):
                return None
            if item.get("namespace") or not (item_id is None or isinstance(item_id, str)):
                return None
            parts.append(
                ToolCallPart(
                    name,
                    arguments,
                    tool_call_id=found.response_tool_call_id(call_id, response_id if scoped else None),
                    id=item_id,
                    provider_name=system,
                    provider_details=None,
                )
            )
        else:
            return None  # reasoning, built-in tools, ...: pydantic-ai's mapping
    return parts


def _usage(model_name: str, facts: _Facts, usage: Any) -> RequestUsage | None:
    """`map_usage` of a Responses `usage` made only of token counts, as the SDK's dump of it gives them."""
    if usage is None:
        return RequestUsage(unmeasured_requests=1)
    if not isinstance(usage, dict) or not set(usage) <= _USAGE_KEYS:
        return None
    # The SDK's `model_dump(exclude_none=True)` of the usage: the same numbers, without the None ones.
    usage_data: dict[str, Any] = {}
    for key, value in usage.items():
        if value is None:
            continue
        if key.endswith("_details"):
            if not isinstance(value, dict) or not all(v is None or _is_int(v) for v in value.values()):
                return None
            value = {k: v for k, v in value.items() if v is not None}
        elif not _is_int(value):
            return None
        usage_data[key] = value
    details = {k: v for k, v in usage_data.items() if k not in _TOKEN_KEYS and _is_int(v)}
    output_details = usage.get("output_tokens_details")
    details["reasoning_tokens"] = output_details.get("reasoning_tokens", 0) if output_details is not None else 0
    request_usage = RequestUsage.extract(
        {"model": model_name, "usage": usage_data},
        provider=facts.provider_name,
        provider_url=facts.provider_url,
        provider_fallback="openai",
        api_flavor="responses",
        details=details,
    )
    input_details = usage_data.get("input_tokens_details")
    cache_write = input_details.get("cache_write_tokens") if isinstance(input_details, dict) else None
    if isinstance(cache_write, int) and not isinstance(cache_write, bool):
        request_usage.cache_write_tokens = cache_write
    return request_usage


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

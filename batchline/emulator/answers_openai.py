"""OpenAI answer bodies: `/v1/responses` response, `/v1/chat/completions` chat.completion, `/v1/embeddings` list."""

from __future__ import annotations

from typing import Any

from .answers_common import (
    AnswerContext,
    Tool,
    Turn,
    answer_text,
    choose_tool,
    embedding,
    hex_id,
    schema_json,
    text_of,
    tokens,
)
from .store import digest_id

_ID_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def answer(endpoint: str, body: dict[str, Any], custom_id: str, ctx: AnswerContext) -> dict[str, Any]:
    if endpoint == "/v1/chat/completions":
        return chat_completion(body, custom_id, ctx)
    if endpoint == "/v1/embeddings":
        return embeddings(body, custom_id, ctx)
    if endpoint == "/v1/completions":
        return completion(body, custom_id, ctx)
    if endpoint == "/v1/moderations":
        return moderation(body, custom_id, ctx)
    return response(body, custom_id, ctx)


def _forced(choice: Any) -> str | None:
    if choice in ("required", "any"):
        return "any"
    if choice == "none":
        return "none"
    if isinstance(choice, dict):
        function = choice.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
        if isinstance(choice.get("name"), str):
            return str(choice["name"])
    return None


def _responses_turn(items: list[dict[str, Any]]) -> Turn:
    start = max((n for n, item in enumerate(items) if item.get("role") == "user"), default=-1)
    after = items[start + 1 :]
    return Turn(
        text_of(items[start].get("content")) if start >= 0 else "",
        tuple(str(i.get("name")) for i in after if i.get("type") == "function_call"),
        tuple(str(i.get("output")) for i in after if i.get("type") == "function_call_output"),
    )


def _chat_turn(messages: list[dict[str, Any]]) -> Turn:
    start = max((n for n, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    after = messages[start + 1 :]
    return Turn(
        text_of(messages[start].get("content")) if start >= 0 else "",
        tuple(
            str((call.get("function") or {}).get("name"))
            for m in after
            for call in m.get("tool_calls") or []
            if isinstance(call, dict)
        ),
        tuple(text_of(m.get("content")) for m in after if m.get("role") == "tool"),
    )


def response(body: dict[str, Any], custom_id: str, ctx: AnswerContext) -> dict[str, Any]:
    model = str(body.get("model", ""))
    items = body.get("input")
    items = [{"role": "user", "content": items}] if isinstance(items, str) else (items or [])
    turn = _responses_turn([i for i in items if isinstance(i, dict)])
    tools = [
        Tool(str(t.get("name")), t.get("parameters") or {})
        for t in body.get("tools") or []
        if isinstance(t, dict) and t.get("type") == "function"
    ]
    tool = choose_tool(tools, _forced(body.get("tool_choice")), turn)
    key = (ctx.batch_id, custom_id)
    output: list[dict[str, Any]]
    if tool is not None:
        arguments = schema_json(tool.schema) if tool.schema else "{}"
        output = [
            {
                "id": "fc_" + hex_id(48, "fc", *key),
                "type": "function_call",
                "status": "completed",
                "arguments": arguments,
                "call_id": "call_" + digest_id(_ID_CHARS, 24, "call", *key),
                "name": tool.name,
            }
        ]
        out_tokens = tokens(arguments)
    else:
        fmt = (body.get("text") or {}).get("format") or {}
        text = (
            schema_json(fmt.get("schema") or {})
            if fmt.get("type") == "json_schema"
            else ("{}" if fmt.get("type") == "json_object" else answer_text(ctx, custom_id, model, "openai", turn))
        )
        output = [
            {
                "id": "msg_" + hex_id(48, "msg", *key),
                "type": "message",
                "status": "completed",
                "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}],
                "role": "assistant",
            }
        ]
        out_tokens = tokens(text)
    in_tokens = tokens(items) + tokens(body.get("instructions") or "")
    return {
        "id": "resp_" + hex_id(48, "resp", *key),
        "object": "response",
        "created_at": ctx.created,
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": {
            "input_tokens": in_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": out_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": in_tokens + out_tokens,
        },
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def _chat_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_completion(body: dict[str, Any], custom_id: str, ctx: AnswerContext) -> dict[str, Any]:
    model = str(body.get("model", ""))
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    turn = _chat_turn(messages)
    tools = [
        Tool(str(t["function"].get("name")), t["function"].get("parameters") or {})
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    tool = choose_tool(tools, _forced(body.get("tool_choice")), turn)
    key = (ctx.batch_id, custom_id)
    message: dict[str, Any]
    if tool is not None:
        arguments = schema_json(tool.schema) if tool.schema else "{}"
        call = {
            "id": "call_" + digest_id(_ID_CHARS, 24, "call", *key),
            "type": "function",
            "function": {"name": tool.name, "arguments": arguments},
        }
        message = {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None, "annotations": []}
        finish, out_text = "tool_calls", arguments
    else:
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            out_text = schema_json((fmt.get("json_schema") or {}).get("schema") or {})
        elif fmt.get("type") == "json_object":
            out_text = "{}"
        else:
            out_text = answer_text(ctx, custom_id, model, "openai", turn)
        message = {"role": "assistant", "content": out_text, "refusal": None, "annotations": []}
        finish = "stop"
    return {
        "id": "chatcmpl-" + digest_id(_ID_CHARS, 29, "chat", *key),
        "object": "chat.completion",
        "created": ctx.created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": _chat_usage(tokens(messages), tokens(out_text)),
        "service_tier": "default",
        "system_fingerprint": None,
    }


def _embedding_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [" ".join(map(str, value))]
    if isinstance(value, list):
        return [v if isinstance(v, str) else " ".join(map(str, v)) for v in value]
    return [""]


def embeddings(body: dict[str, Any], custom_id: str, ctx: AnswerContext) -> dict[str, Any]:
    model = str(body.get("model", ""))
    inputs = _embedding_inputs(body.get("input"))
    dimensions = int(body.get("dimensions") or (3072 if "large" in model else 1536))
    used = sum(tokens(text) for text in inputs)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": embedding(text, dimensions)}
            for index, text in enumerate(inputs)
        ],
        "model": model,
        "usage": {"prompt_tokens": used, "total_tokens": used},
    }


def completion(body: dict[str, Any], custom_id: str, ctx: AnswerContext) -> dict[str, Any]:
    model = str(body.get("model", ""))
    text = answer_text(ctx, custom_id, model, "openai")
    prompt, out = tokens(body.get("prompt") or ""), tokens(text)
    return {
        "id": "cmpl-" + digest_id(_ID_CHARS, 29, "cmpl", ctx.batch_id, custom_id),
        "object": "text_completion",
        "created": ctx.created,
        "model": model,
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out},
    }


def moderation(body: dict[str, Any], custom_id: str, ctx: AnswerContext) -> dict[str, Any]:
    inputs = _embedding_inputs(body.get("input"))
    categories = ["harassment", "hate", "self-harm", "sexual", "violence"]
    return {
        "id": "modr-" + hex_id(32, "modr", ctx.batch_id, custom_id),
        "model": str(body.get("model", "omni-moderation-latest")),
        "results": [
            {
                "flagged": False,
                "categories": dict.fromkeys(categories, False),
                "category_scores": dict.fromkeys(categories, 0.0001),
            }
            for _ in inputs
        ],
    }


ERROR_KINDS: dict[str, tuple[int, str, str | None, str]] = {
    "server_error": (500, "server_error", None, "The server had an error while processing your request. Sorry!"),
    "rate_limit": (429, "requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    "invalid_request": (400, "invalid_request_error", None, "Invalid request."),
    "overloaded": (503, "server_error", None, "The engine is currently overloaded, please try again later."),
    "billing": (429, "insufficient_quota", "insufficient_quota", "You exceeded your current quota."),
}


def error_response(kind: str, message: str | None) -> tuple[int, dict[str, Any]]:
    """The status and body a rejected request gets, as `response` of an error-file line."""
    status, error_type, code, default = ERROR_KINDS.get(kind, ERROR_KINDS["server_error"])
    return status, {"error": {"message": message or default, "type": error_type, "param": None, "code": code}}

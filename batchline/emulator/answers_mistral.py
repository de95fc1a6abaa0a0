"""Mistral answer bodies: `/v1/chat/completions` as Mistral writes it (ids `cmpl-`, plain usage, `prefix` on the
message), and its error bodies, a flat `{"object": "error", ...}` rather than OpenAI's nested `error`."""

from __future__ import annotations

from typing import Any

from .answers_common import AnswerContext, Tool, answer_text, choose_tool, hex_id, schema_json, tokens
from .answers_openai import _chat_turn, _forced
from .store import digest_id

_ID_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

ERROR_KINDS: dict[str, tuple[int, str, str, str]] = {
    "server_error": (500, "internal_server_error", "1000", "Internal server error."),
    "rate_limit": (429, "rate_limited", "1300", "Requests rate limit exceeded."),
    "invalid_request": (400, "invalid_request_error", "3000", "Invalid request."),
    "overloaded": (503, "service_tier_capacity_exceeded", "3505", "Service tier capacity exceeded for this model."),
    "billing": (402, "invalid_request_error", "3900", "No payment method on file; add one to use the API."),
}


def error_body(status: int, message: str, *, error_type: str | None = None, code: str | None = None) -> dict[str, Any]:
    kind = error_type or ("internal_server_error" if status >= 500 else "invalid_request_error")
    return {"object": "error", "message": message, "type": kind, "param": None, "code": code}


def error_response(kind: str, message: str | None) -> tuple[int, dict[str, Any]]:
    """The status and body a failed request gets in a Mistral error file."""
    status, error_type, code, default = ERROR_KINDS.get(kind, ERROR_KINDS["server_error"])
    return status, error_body(status, message or default, error_type=error_type, code=code)


def chat_completion(body: dict[str, Any], model: str, custom_id: str, ctx: AnswerContext) -> dict[str, Any]:
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
            "id": digest_id(_ID_CHARS, 9, "call", *key),  # Mistral's tool call ids are 9 characters
            "type": "function",
            "function": {"name": tool.name, "arguments": arguments},
            "index": 0,
        }
        message = {"role": "assistant", "content": "", "tool_calls": [call], "prefix": False}
        finish, out_text = "tool_calls", arguments
    else:
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            out_text = schema_json((fmt.get("json_schema") or {}).get("schema") or {})
        elif fmt.get("type") == "json_object":
            out_text = "{}"
        else:
            out_text = answer_text(ctx, custom_id, model, "mistral", turn)
        message = {"role": "assistant", "content": out_text, "tool_calls": None, "prefix": False}
        finish = "stop"
    prompt, completion = tokens(messages), tokens(out_text)
    return {
        "id": "cmpl-" + hex_id(32, "cmpl", *key),
        "object": "chat.completion",
        "created": ctx.created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }

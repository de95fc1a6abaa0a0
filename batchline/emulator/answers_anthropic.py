"""Anthropic answer bodies: a `message` with text or tool_use content blocks, and errored results."""

from __future__ import annotations

from typing import Any

from .answers_common import (
    AnswerContext,
    Tool,
    Turn,
    answer_text,
    choose_tool,
    schema_json,
    text_of,
    tokens,
    tool_arguments,
)
from .store import digest_id

_ID_CHARS = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _forced(choice: Any) -> str | None:
    if not isinstance(choice, dict):
        return None
    kind = choice.get("type")
    if kind == "tool" and isinstance(choice.get("name"), str):
        return str(choice["name"])
    if kind in ("any", "none"):
        return str(kind)
    return None


def _output_schema(params: dict[str, Any]) -> Any:
    for fmt in (params.get("output_format"), (params.get("output_config") or {}).get("format")):
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            return fmt.get("schema") or {}
    return None


def _blocks(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind] if isinstance(content, list) else []


def _turn(messages: list[dict[str, Any]]) -> Turn:
    """Tool results come back in user messages: the prompt is the last user message that is not only tool results."""
    prompts = [
        n
        for n, m in enumerate(messages)
        if m.get("role") == "user" and (isinstance(m.get("content"), str) or not _blocks(m, "tool_result"))
    ]
    start = prompts[-1] if prompts else -1
    after = messages[start + 1 :]
    return Turn(
        text_of(messages[start].get("content")) if start >= 0 else "",
        tuple(str(b.get("name")) for m in after for b in _blocks(m, "tool_use")),
        tuple(text_of(b.get("content")) for m in after for b in _blocks(m, "tool_result")),
    )


def message(params: dict[str, Any], custom_id: str, ctx: AnswerContext) -> dict[str, Any]:
    model = str(params.get("model", ""))
    messages = [m for m in params.get("messages") or [] if isinstance(m, dict)]
    turn = _turn(messages)
    tools = [
        Tool(str(t["name"]), t.get("input_schema") or {})
        for t in params.get("tools") or []
        if isinstance(t, dict) and "input_schema" in t and isinstance(t.get("name"), str)
    ]
    tool = choose_tool(tools, _forced(params.get("tool_choice")), turn)
    key = (ctx.batch_id, custom_id)
    blocks: list[dict[str, Any]]
    if tool is not None:
        arguments = tool_arguments(tool)
        block_id = "toolu_01" + digest_id(_ID_CHARS, 22, "toolu", *key)
        blocks = [{"type": "tool_use", "id": block_id, "name": tool.name, "input": arguments}]
        stop_reason, out_tokens = "tool_use", tokens(arguments)
    else:
        schema = _output_schema(params)
        text = schema_json(schema) if schema is not None else answer_text(ctx, custom_id, model, "anthropic", turn)
        blocks = [{"type": "text", "text": text}]
        stop_reason, out_tokens = "end_turn", tokens(text)
    return {
        "id": "msg_01" + digest_id(_ID_CHARS, 22, "msg", *key),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": tokens(messages) + tokens(params.get("system") or ""),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": out_tokens,
        },
    }


ERROR_KINDS: dict[str, tuple[str, str]] = {
    "server_error": ("api_error", "Internal server error"),
    "rate_limit": ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    "invalid_request": ("invalid_request_error", "Invalid request"),
    "overloaded": ("overloaded_error", "Overloaded"),
    "billing": ("invalid_request_error", "Your credit balance is too low to access the Anthropic API."),
}


def errored(kind: str, message_text: str | None) -> dict[str, Any]:
    """An errored result: the error the Messages API would have answered with, nested twice."""
    error_type, default = ERROR_KINDS.get(kind, ERROR_KINDS["server_error"])
    return {
        "type": "errored",
        "error": {"type": "error", "error": {"details": None, "type": error_type, "message": message_text or default}},
    }

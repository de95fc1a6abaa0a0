"""Gemini answer bodies: a GenerateContentResponse with text or functionCall parts, and error entries."""

from __future__ import annotations

from typing import Any

import orjson

from .answers_common import (
    AnswerContext,
    Tool,
    Turn,
    answer_text,
    choose_tool,
    embedding,
    schema_json,
    text_of,
    tokens,
    tool_arguments,
)


def field(data: Any, camel: str) -> Any:
    """A field by its JSON name (`responseJsonSchema`) or its proto name (`response_json_schema`)."""
    if not isinstance(data, dict):
        return None
    if camel in data:
        return data[camel]
    return data.get("".join("_" + c.lower() if c.isupper() else c for c in camel))


def _forced(tool_config: Any) -> tuple[str | None, list[str]]:
    config = field(tool_config, "functionCallingConfig") or {}
    mode = str(field(config, "mode") or "AUTO").upper()
    allowed = [str(name) for name in field(config, "allowedFunctionNames") or []]
    if mode == "ANY":
        return ("any" if len(allowed) != 1 else allowed[0]), allowed
    if mode == "NONE":
        return "none", allowed
    return None, allowed


def _text_parts(content: Any) -> str:
    parts = content.get("parts") if isinstance(content, dict) else None
    return " ".join(text_of(p) for p in parts or [] if isinstance(p, dict) and "text" in p)


def _parts(content: dict[str, Any], kind: str) -> list[Any]:
    return [p[kind] for p in content.get("parts") or [] if isinstance(p, dict) and isinstance(p.get(kind), dict)]


def _turn(contents: list[dict[str, Any]]) -> Turn:
    """Function responses come back in user turns: the prompt is the last user turn that holds text."""
    prompts = [n for n, c in enumerate(contents) if c.get("role", "user") == "user" and _text_parts(c)]
    start = prompts[-1] if prompts else -1
    after = contents[start + 1 :]
    return Turn(
        _text_parts(contents[start]) if start >= 0 else "",
        tuple(str(call.get("name")) for c in after for call in _parts(c, "functionCall")),
        tuple(_response_text(r.get("response")) for c in after for r in _parts(c, "functionResponse")),
    )


def _response_text(response: Any) -> str:
    """pydantic-ai sends a tool's return as `{"return_value": ...}`."""
    value = response.get("return_value", response) if isinstance(response, dict) else response
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def generate_content_response(request: dict[str, Any], key: str, model: str, ctx: AnswerContext) -> dict[str, Any]:
    contents = [c for c in request.get("contents") or [] if isinstance(c, dict)]
    turn = _turn(contents)
    forced, allowed = _forced(field(request, "toolConfig"))
    tools = [
        Tool(str(decl.get("name")), field(decl, "parametersJsonSchema") or decl.get("parameters") or {})
        for group in request.get("tools") or []
        if isinstance(group, dict)
        for decl in field(group, "functionDeclarations") or []
        if isinstance(decl, dict) and (not allowed or decl.get("name") in allowed)
    ]
    tool = choose_tool(tools, forced, turn)
    part: dict[str, Any]
    if tool is not None:
        arguments = tool_arguments(tool)
        part = {"functionCall": {"name": tool.name, "args": arguments}}
        out_tokens = tokens(arguments)
    else:
        config = field(request, "generationConfig") or {}
        schema = field(config, "responseJsonSchema") or field(config, "responseSchema")
        if schema is not None:
            text = schema_json(schema)
        elif field(config, "responseMimeType") == "application/json":
            text = "{}"
        else:
            text = answer_text(ctx, key, model, "gemini", turn)
        part = {"text": text}
        out_tokens = tokens(text)
    prompt_tokens = tokens(contents) + tokens(field(request, "systemInstruction") or "")
    return {
        "candidates": [{"content": {"parts": [part], "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": out_tokens,
            "totalTokenCount": prompt_tokens + out_tokens,
        },
        "modelVersion": model.removeprefix("models/"),
    }


def embed_content_item(request: dict[str, Any], model: str) -> dict[str, Any]:
    """One result of an embedding batch: `{"response": EmbedContentResponse}` with the vector and the input's tokens
    (google-genai's `SingleEmbedContentResponse.token_count`), or an error for a request with no text to embed.

    The vector follows the text, the task type and the title, so a test can tell which of them arrived."""
    text = _text_parts(field(request, "content"))
    if not text.strip():
        return {"error": error_entry("invalid_request", "* EmbedContentRequest.content: contents must not be empty")}
    task, title = str(field(request, "taskType") or ""), str(field(request, "title") or "")
    dimensions = int(field(request, "outputDimensionality") or (3072 if "gemini-embedding" in model else 768))
    seed = "\x1f".join((task, title, text)) if task or title else text
    return {"response": {"embedding": {"values": embedding(seed, dimensions)}, "tokenCount": tokens(text)}}


# google.rpc.Code numbers and the HTTP status each stands for.
ERROR_KINDS: dict[str, tuple[int, str]] = {
    "server_error": (13, "Internal error encountered."),
    "rate_limit": (8, "Resource has been exhausted (e.g. check quota)."),
    "invalid_request": (3, "Request contains an invalid argument."),
    "overloaded": (14, "The model is overloaded. Please try again later."),
    "billing": (7, "Billing is not enabled for this project."),
}


def error_entry(kind: str, message: str | None) -> dict[str, Any]:
    code, default = ERROR_KINDS.get(kind, ERROR_KINDS["server_error"])
    return {"code": code, "message": message or default}

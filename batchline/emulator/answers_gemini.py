"""Gemini answer bodies: a GenerateContentResponse with text or functionCall parts, and error entries."""

from __future__ import annotations

from typing import Any

from .answers_common import (
    AnswerContext,
    Tool,
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


def generate_content_response(request: dict[str, Any], key: str, model: str, ctx: AnswerContext) -> dict[str, Any]:
    contents = [c for c in request.get("contents") or [] if isinstance(c, dict)]
    last = contents[-1] if contents else {}
    after_tool = any(isinstance(p, dict) and "functionResponse" in p for p in last.get("parts") or [])
    last_user = next((c for c in reversed(contents) if c.get("role", "user") == "user"), {})
    forced, allowed = _forced(field(request, "toolConfig"))
    tools = [
        Tool(str(decl.get("name")), field(decl, "parametersJsonSchema") or decl.get("parameters") or {})
        for group in request.get("tools") or []
        if isinstance(group, dict)
        for decl in field(group, "functionDeclarations") or []
        if isinstance(decl, dict) and (not allowed or decl.get("name") in allowed)
    ]
    tool = choose_tool(tools, forced, _text_parts(last_user), after_tool)
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
            text = answer_text(ctx, key, model, "gemini")
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

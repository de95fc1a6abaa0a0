"""Input builders the emulator tests share."""

from __future__ import annotations

import json
from typing import Any


def openai_lines(count: int, endpoint: str = "/v1/chat/completions", model: str = "gpt-4o-mini", **extra: Any) -> bytes:
    """An OpenAI batch input file of `count` requests with custom_ids r0, r1, ..."""
    lines = []
    for index in range(count):
        if endpoint == "/v1/embeddings":
            body: dict[str, Any] = {"model": model, "input": f"text {index}"}
        elif endpoint == "/v1/responses":
            body = {"model": model, "input": f"question {index}"}
        else:
            body = {"model": model, "messages": [{"role": "user", "content": f"question {index}"}]}
        body.update(extra)
        lines.append(json.dumps({"custom_id": f"r{index}", "method": "POST", "url": endpoint, "body": body}))
    return "\n".join(lines).encode() + b"\n"


def anthropic_requests(count: int, model: str = "claude-sonnet-4-5", **extra: Any) -> list[dict[str, Any]]:
    params = {"model": model, "max_tokens": 100, **extra}
    return [
        {"custom_id": f"a{i}", "params": {**params, "messages": [{"role": "user", "content": f"question {i}"}]}}
        for i in range(count)
    ]

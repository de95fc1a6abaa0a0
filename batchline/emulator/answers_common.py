"""What the deterministic answer makers share: token counts, tool choice, answer text, embedding vectors."""

from __future__ import annotations

import hashlib
import math
import random
import re
from dataclasses import dataclass
from typing import Any

import orjson

from .schema import example


@dataclass(frozen=True)
class AnswerContext:
    """What an answer depends on besides its request: the batch, the time it ran, the text template."""

    batch_id: str
    created: int
    template: str


@dataclass(frozen=True)
class Tool:
    name: str
    schema: dict[str, Any]


def tokens(value: Any) -> int:
    """A deterministic token count: about one token per four characters of the value's JSON."""
    text = value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return max(1, math.ceil(len(text) / 4))


@dataclass(frozen=True)
class Turn:
    """The conversation since the user's last prompt: what the model was asked, and the tools it has called since."""

    prompt: str = ""
    called: tuple[str, ...] = ()
    """The names of the tools called since the prompt, in order."""
    results: tuple[str, ...] = ()
    """The text of the tool results given back since the prompt, in order."""

    @property
    def after_tool(self) -> bool:
        return bool(self.results)


def answer_text(ctx: AnswerContext, custom_id: str, model: str | None, provider: str, turn: Turn | None = None) -> str:
    results = "; ".join(turn.results) if turn else ""
    fields = {"custom_id": custom_id, "model": model or "", "provider": provider, "tool_results": results}
    try:
        return ctx.template.format_map(fields)
    except (KeyError, IndexError, ValueError):
        return ctx.template


def schema_json(schema: Any) -> str:
    return orjson.dumps(example(schema)).decode()


def tool_arguments(tool: Tool) -> dict[str, Any]:
    value = example(tool.schema)
    return value if isinstance(value, dict) else {}


def choose_tool(tools: list[Tool], forced: str | None, turn: Turn) -> Tool | None:
    """The tool the model calls, if any.

    `forced` is a tool name, "any" (a tool must be called), "none", or None (the model decides). Deciding alone, the
    model calls, one per round, each tool the user's last prompt mentions (in the order the tools are declared) that
    it has not called since that prompt, then answers: a prompt naming two tools takes two tool rounds.
    """
    if not tools or forced == "none":
        return None
    mentioned = [t for t in tools if re.search(rf"(?<![\w-]){re.escape(t.name)}(?![\w-])", turn.prompt)]
    if forced not in (None, "any", "auto"):
        return next((t for t in tools if t.name == forced), tools[0])
    fresh = next((t for t in mentioned if t.name not in turn.called), None)
    if forced == "any" and fresh is None:
        return tools[-1] if turn.after_tool else tools[0]  # pydantic-ai declares its output tools last
    return fresh


def text_of(content: Any) -> str:
    """The text in a message's content: a string, or a list of parts with `text` fields."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(text_of(part) for part in content)
    if isinstance(content, dict):
        for key in ("text", "content"):
            if isinstance(content.get(key), (str, list)):
                return text_of(content[key])
    return ""


def embedding(text: str, dimensions: int) -> list[float]:
    """A unit vector derived from `text`: the same text always gets the same vector."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 8) for v in values]


def hex_id(length: int, *parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:length]

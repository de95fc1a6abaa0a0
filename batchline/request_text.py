"""What a request body, in any provider's own format, holds that its input token count depends on.

One walk over the JSON serves all three providers and raw mode: prompt text sits under a few keys in every format
(`content`, `text`, `input`, `instructions`, `system`, and a tool call's `arguments` or `output`), images and files
are recognised by their block's `type` or key, and the rest (tool schemas, settings) only counts as bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

PROMPT_KEYS = frozenset({"content", "text", "input", "instructions", "system", "prompt", "arguments", "output"})
"""Keys whose string values (alone or in a list) are text the model reads as it is written."""

MEDIA_TYPES = frozenset(
    {"input_image", "input_file", "input_audio", "image_url", "image", "document", "file", "audio", "video"}
)
"""Block types of images, files and audio (OpenAI, Anthropic): their tokens depend on what they hold."""

MEDIA_KEYS = frozenset({"inlineData", "inline_data", "fileData", "file_data"})
"""Gemini's parts that carry or point to media."""

UNBILLED_TYPES = frozenset({"reasoning", "thinking", "redacted_thinking"})
"""Earlier turns' reasoning, replayed in the history: the providers drop it or send it encrypted, not as text."""


@dataclass
class BodyText:
    """A request body's counts: its size, the words of its prompt text, its media blocks and their size."""

    size: int = 0
    words: int = 0
    media: int = 0
    media_bytes: int = 0
    tools: bool = False

    @property
    def text_bytes(self) -> int:
        return self.size - self.media_bytes


def read_body(body: bytes) -> tuple[dict[str, Any], BodyText]:
    """The parsed body and its counts."""
    parsed = orjson.loads(body)
    seen = BodyText(size=len(body))
    if isinstance(parsed, dict):
        seen.tools = bool(parsed.get("tools"))
        _walk(parsed, None, seen)
        return parsed, seen
    return {}, seen


def _walk(value: Any, key: str | None, seen: BodyText) -> None:
    if isinstance(value, str):
        if key in PROMPT_KEYS:
            # A token never spans whitespace between two words: every word is at least one token.
            seen.words += len(value.split())
    elif isinstance(value, list):
        for item in value:
            _walk(item, key, seen)
    elif isinstance(value, dict):
        kind = value.get("type")
        kind = kind if isinstance(kind, str) else None  # a JSON schema's `type` may be a list
        if kind in UNBILLED_TYPES:
            return
        if kind in MEDIA_TYPES or not MEDIA_KEYS.isdisjoint(value):
            seen.media += 1
            seen.media_bytes += len(orjson.dumps(value))
            return
        for name, item in value.items():
            _walk(item, name, seen)

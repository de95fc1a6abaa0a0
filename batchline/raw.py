"""Raw mode: requests already in a provider's own batch format, sent unchanged, and results exported in its format.

An OpenAI batch input file (`{"custom_id", "method", "url", "body"}` lines, for `/v1/responses`,
`/v1/chat/completions`, `/v1/embeddings`, ...) or Anthropic `{"custom_id", "params"}` lines run as a job as they
are; `batch_export` writes the results as the provider's own output file would have them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .errors import BatchInputError


@dataclass(frozen=True)
class RawRequest:
    """One request in a provider's own format."""

    custom_id: str
    body: dict[str, Any]
    """The request body: an OpenAI line's `body`, or an Anthropic line's `params`."""
    url: str | None = None
    """The OpenAI endpoint the line names (`/v1/chat/completions`, ...); None for Anthropic and Mistral lines."""


def read_jsonl(path: Path) -> list[RawRequest]:
    """The raw requests of a JSONL file; a malformed line is named by its number."""
    with path.open("rb") as lines:
        return list(parse_lines(lines, str(path)))


def json_lines(lines: Iterable[bytes], source: str) -> Iterator[tuple[int, Any]]:
    """`(line number, parsed JSON)` of each non-blank line; a line that is not JSON is named by its number."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise BatchInputError(f"{source}, line {number}: not JSON ({error.msg})") from None


def parse_lines(lines: Iterable[bytes], source: str = "input") -> Iterator[RawRequest]:
    for number, item in json_lines(lines, source):
        request = from_line(item)
        if request is None:
            raise BatchInputError(
                f"{source}, line {number}: expected an OpenAI batch line {{custom_id, method, url, body}} "
                "or an Anthropic one {custom_id, params} or a Mistral one {custom_id, body}"
            )
        yield request


def from_line(item: Any) -> RawRequest | None:
    """The raw request a parsed line holds, or None when it is not a provider batch line."""
    if not isinstance(item, dict) or not isinstance(item.get("custom_id"), str):
        return None
    if isinstance(item.get("body"), dict) and isinstance(item.get("url"), str):
        if str(item.get("method", "POST")).upper() != "POST":
            return None
        return RawRequest(item["custom_id"], item["body"], item["url"])
    if isinstance(item.get("params"), dict):
        return RawRequest(item["custom_id"], item["params"])
    if isinstance(item.get("body"), dict) and "url" not in item:  # Mistral's line: the job names its endpoint
        return RawRequest(item["custom_id"], item["body"])
    return None

"""Encode a job's requests at the cost of one pydantic-ai encode per request shape, not per request.

A job's requests usually share everything but their texts: model, settings, parameters, and the kinds of their
messages and parts. For such a shape pydantic-ai encodes one request with markers in place of the texts; every other
request of the shape is that body with its own texts put where the markers came out, JSON-escaped by the function
pydantic-ai's encoders use (`pydantic_core.to_json`). So every byte outside a user's text is still pydantic-ai's.

Guards: the first request of a shape is encoded by pydantic-ai too, and the template must rebuild it byte for byte, or
the shape is encoded request by request. A text's leading and trailing whitespace is part of its shape (an encoder may
strip it); an empty or blank text, and anything beyond plain text parts (files, tool calls, cache points, metadata),
goes to pydantic-ai request by request.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Hashable, Sequence
from operator import attrgetter
from typing import Any

import orjson
from pydantic_ai.messages import ModelRequest, ModelResponse, SystemPromptPart, TextPart, UserPromptPart
from pydantic_ai.models.batch import BatchRequest
from pydantic_core import to_json

from ..codec import PARAMS
from .base import Encoded

_MARK = "bl" + uuid.uuid4().hex  # never in a real body: it is made up fresh in every process
_ID_MARK = _MARK + "_id"

# Fields no encoder reads: left out of a shape, so requests made at different times share one.
_UNREAD = frozenset({"parts", "content", "instructions", "timestamp", "usage"})
_TEXT_PARTS = (SystemPromptPart, UserPromptPart, TextPart)
_MESSAGES = (ModelRequest, ModelResponse)
_SHAPE_FIELDS = {
    cls: attrgetter(*(f.name for f in dataclasses.fields(cls) if f.name not in _UNREAD))
    for cls in (*_MESSAGES, *_TEXT_PARTS)
}
"""Per class, what of an object goes into its shape (one value, or a tuple of them), read in C."""

Encode = Callable[[BatchRequest], Awaitable[Encoded]]


async def encode_by_shape(requests: Sequence[BatchRequest], encode: Encode) -> list[Encoded]:
    """`encode` (an adapter's pydantic-ai encode of one request) for every request, templated per shape."""
    params: dict[int, bytes | None] = {}  # id -> value of each parameters object seen, made once per object
    first: dict[Hashable, tuple[BatchRequest, list[str], Encoded]] = {}
    templates: dict[Hashable, _Template | None] = {}
    out: list[Encoded] = []
    for request in requests:
        texts: list[str] = []
        key = _shape(request, texts, params)
        if key is None:
            out.append(await encode(request))
        elif key in templates:
            template = templates[key]
            out.append(template.fill(request.custom_id, texts) if template else await encode(request))
        elif key not in first:
            encoded = await encode(request)
            first[key] = (request, texts, encoded)
            out.append(encoded)
        else:  # the second request of its shape: make the shape's template, proven on the first
            seen, seen_texts, seen_encoded = first.pop(key)
            template = await _Template.make(seen, encode)
            if template is not None and template.fill(seen.custom_id, seen_texts) != seen_encoded:
                template = None
            templates[key] = template
            out.append(template.fill(request.custom_id, texts) if template else await encode(request))
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class _Template:
    pieces: tuple[bytes, ...]
    """The body around the slots: one more piece than slots."""
    slots: tuple[int, ...]
    """For each gap between pieces, the index of the text that goes there; -1 for the custom_id."""
    group: str

    @classmethod
    async def make(cls, request: BatchRequest, encode: Encode) -> _Template | None:
        """The body of `request` with markers for its texts and id, cut at the markers; None unless each text's
        marker comes out once, whole (with its outer whitespace)."""
        marked, marks = _marked(request)
        try:
            encoded = await encode(marked)
        except Exception:  # the real requests are then encoded one by one, and raise what they raise
            return None
        body = encoded.body
        found: list[tuple[int, int, int]] = []  # (position, length, slot)
        for slot, mark in [(-1, _ID_MARK), *enumerate(marks)]:
            needle = to_json(mark)[1:-1]
            at = body.find(needle)
            if at < 0 and slot < 0:
                continue  # the body does not hold the custom_id
            if at < 0 or body.find(needle, at + 1) >= 0:
                return None  # a text the encoder dropped, changed or repeated
            found.append((at, len(needle), slot))
        found.sort()
        pieces: list[bytes] = []
        start = 0
        for at, length, _ in found:
            pieces.append(body[start:at])
            start = at + length
        pieces.append(body[start:])
        if _MARK in encoded.group or any(_MARK.encode() in piece for piece in pieces):
            return None
        return cls(tuple(pieces), tuple(slot for _, _, slot in found), encoded.group)

    def fill(self, custom_id: str, texts: list[str]) -> Encoded:
        parts = [self.pieces[0]]
        for slot, piece in zip(self.slots, self.pieces[1:], strict=True):
            parts.append(to_json(custom_id if slot < 0 else texts[slot])[1:-1])
            parts.append(piece)
        return Encoded(custom_id, b"".join(parts), group=self.group)


def _shape(request: BatchRequest, texts: list[str], params: dict[int, bytes | None]) -> Hashable | None:
    """What `request` shares with the requests one template serves, its texts appended to `texts`; None when it is
    not made of plain, non-blank text parts only. `params` remembers the value of each parameters object by id."""
    settings = request.model_settings
    own = request.model_request_parameters
    if (value := params.get(id(own), b"")) == b"":
        try:
            value = params[id(own)] = PARAMS.dump_json(own)
        except ValueError:
            value = params[id(own)] = None
    if value is None:
        return None
    key: list[Any] = [
        type(request),
        getattr(request, "model", None),
        orjson.dumps(settings, option=orjson.OPT_SORT_KEYS) if settings else None,
        value,
    ]
    for message in request.messages:
        if type(message) not in _MESSAGES:
            return None
        key.append(_fields(message))
        if isinstance(message, ModelRequest) and message.instructions is not None:
            if (outer := _text(message.instructions, texts)) is None:
                return None
            key.append(outer)
        for part in message.parts:
            content = getattr(part, "content", None)
            if type(part) not in _TEXT_PARTS or not isinstance(content, str):
                return None
            if (outer := _text(content, texts)) is None:
                return None
            key += (_fields(part), outer)
    shape = tuple(key)
    try:
        hash(shape)
    except TypeError:  # metadata, details or citations: not part of any template
        return None
    return shape


def _fields(obj: Any) -> tuple[Any, Any]:
    return type(obj), _SHAPE_FIELDS[type(obj)](obj)


def _text(text: str, texts: list[str]) -> tuple[str, str] | None:
    """A text's place in a shape: its leading and trailing whitespace, which an encoder may strip. None if blank."""
    if not text or text.isspace():
        return None
    texts.append(text)
    lead = text[: len(text) - len(text.lstrip())] if text[0].isspace() else ""
    trail = text[len(text.rstrip()) :] if text[-1].isspace() else ""
    return (lead, trail)


def _marked(request: BatchRequest) -> tuple[BatchRequest, list[str]]:
    """A copy of `request` with a marker for its id and for each of its texts (keeping their outer whitespace)."""
    marks: list[str] = []

    def mark(text: str) -> str:
        lead = text[: len(text) - len(text.lstrip())]
        trail = text[len(text.rstrip()) :]
        marks.append(f"{lead}{_MARK}_{len(marks)}_{trail}")
        return marks[-1]

    messages: list[Any] = []
    for message in request.messages:
        changes: dict[str, Any] = {}
        if isinstance(message, ModelRequest) and message.instructions is not None:
            changes["instructions"] = mark(message.instructions)
        parts: list[Any] = list(message.parts)  # text parts only: `_shape` let this request through
        changes["parts"] = [dataclasses.replace(part, content=mark(part.content)) for part in parts]
        messages.append(dataclasses.replace(message, **changes))
    return dataclasses.replace(request, custom_id=_ID_MARK, messages=messages), marks

"""A stored result's value (the field of `P:job:J:res`): its status letter, then its body, zstd-compressed.

A value is the status letter (`records.RESULT_TAGS`) followed by either

- the body as it came (what every batchline before this one wrote, and still writes for an empty body or one that
  does not shrink), or
- `MARK`, a dictionary number and the body as a zstd frame made with that dictionary (0: the body as it came).

The letter stays first so that the Lua scripts (counting, the cache's sharing) read the status as before. `MARK`
(0xff) can never begin a body as it came: bodies are JSON texts, which are UTF-8, where 0xff never occurs; a body
that does begin with it anyway is kept as dictionary 0, so any bytes read back as they were given.

The dictionaries are raw-content zstd dictionaries of the providers' answer shapes, built from the recorded
payloads by `scripts/build_result_dictionary.py` and shipped in `batchline/dictionaries/`. A dictionary's number is
never reused for other bytes: a value stored today must read with the same bytes in every later batchline.
"""

from __future__ import annotations

import threading
from functools import cache
from importlib import resources

import zstandard

from .records import RESULT_TAGS, TAG_STATUS, StoredResult

MARK = b"\xff"
AS_GIVEN = 0
"""The dictionary number of a body kept as it came after `MARK`."""
DICTIONARIES = {1: "results-1.zdict"}
"""Dictionary number -> its file in `batchline/dictionaries/`."""
CURRENT = 1
"""The dictionary new values are compressed with."""
LEVEL = 3
"""zstd's level: on the recorded shapes 1 is 3% larger for 20% less time, 6 is 9% smaller for twice the time."""
SMALLEST = 64
"""Bodies shorter than this are kept as they came: the frame's header and a Redis allocation eat the gain."""


@cache
def dictionary(number: int) -> zstandard.ZstdCompressionDict:
    """A shipped dictionary by its number (ValueError for one this batchline does not know)."""
    name = DICTIONARIES.get(number)
    if name is None:
        raise ValueError(
            f"a stored result was compressed with dictionary {number}, which this batchline does not have: "
            "it was stored by a newer batchline"
        )
    data = resources.files("batchline.dictionaries").joinpath(name).read_bytes()
    return zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


class _Codecs(threading.local):
    """zstd's contexts are not safe to share between threads: each thread makes its own, once."""

    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor(
            level=LEVEL,
            dict_data=dictionary(CURRENT),
            write_checksum=False,  # Redis keeps the bytes; the frame's size and zstd's own checks catch a bad one
            write_content_size=True,  # decompression then allocates once, at the right size
            write_dict_id=False,  # the value names its dictionary itself
        )
        self.decompressors: dict[int, zstandard.ZstdDecompressor] = {}

    def decompressor(self, number: int) -> zstandard.ZstdDecompressor:
        found = self.decompressors.get(number)
        if found is None:
            found = self.decompressors[number] = zstandard.ZstdDecompressor(dict_data=dictionary(number))
        return found


_codecs = _Codecs()


def pack(status: str, body: bytes) -> bytes:
    """The value to store for a result: its status letter, then its body compressed when that makes it smaller."""
    tag = RESULT_TAGS[status]
    if len(body) >= SMALLEST:
        frame = _codecs.compressor.compress(body)
        if len(frame) + 2 < len(body):
            return b"".join((tag, MARK, bytes((CURRENT,)), frame))
    if body[:1] == MARK:
        return b"".join((tag, MARK, bytes((AS_GIVEN,)), body))
    return tag + body


def unpack(custom_id: str, value: bytes) -> StoredResult:
    """A stored value (of any batchline's) as the result it holds, its body exactly as it was given to `pack`."""
    status = TAG_STATUS[value[:1]]
    if value[1:2] != MARK:
        return StoredResult(custom_id, status, value[1:])
    number = value[2]
    if number == AS_GIVEN:
        return StoredResult(custom_id, status, value[3:])
    return StoredResult(custom_id, status, _codecs.decompressor(number).decompress(value[3:]))

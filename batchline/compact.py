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
from collections.abc import Sequence
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
    return pack_many([(status, body)])[0]


def pack_many(results: Sequence[tuple[str, bytes]]) -> list[bytes]:
    """The value to store for each `(status, body)`: see `pack`.

    The bodies are compressed in one call, which lets go of the GIL for the whole chunk, so the store's writer thread
    compresses while the fetch parses the next chunk. Compressing one body per call instead took the GIL back after
    each (about 6 microseconds of work), and the thread then waited for it: the ingest ran slower than on one thread.
    zstandard calls `multi_compress_to_buffer` experimental and has it in its C backend only (CPython's): with another
    backend the bodies are compressed one at a time, into the same frames. `threads=0` compresses on the calling
    thread, where any other value starts threads on every call."""
    long: list[bytes | bytearray | memoryview] = [body for _, body in results if len(body) >= SMALLEST]
    frames = iter(_compress_all(long) if long else ())
    out = []
    for status, body in results:
        frame = next(frames) if len(body) >= SMALLEST else None
        if frame is not None and len(frame) + 2 < len(body):
            out.append(b"".join((RESULT_TAGS[status], MARK, bytes((CURRENT,)), frame)))
        elif body[:1] == MARK:
            out.append(b"".join((RESULT_TAGS[status], MARK, bytes((AS_GIVEN,)), body)))
        else:
            out.append(RESULT_TAGS[status] + body)
    return out


def _compress_all(bodies: list[bytes | bytearray | memoryview]) -> list[bytes]:
    compressor = _codecs.compressor
    if zstandard.backend == "cext":
        frames = compressor.multi_compress_to_buffer(bodies, threads=0)
        return [frames[i].tobytes() for i in range(len(frames))]
    # zstandard's other backends (CFFI, as on PyPy) raise NotImplementedError for the call above: one at a time.
    return [compressor.compress(body) for body in bodies]


def unpack(custom_id: str, value: bytes) -> StoredResult:
    """A stored value (of any batchline's) as the result it holds, its body exactly as it was given to `pack`."""
    status = TAG_STATUS[value[:1]]
    if value[1:2] != MARK:
        return StoredResult(custom_id, status, value[1:])
    number = value[2]
    if number == AS_GIVEN:
        return StoredResult(custom_id, status, value[3:])
    return StoredResult(custom_id, status, _codecs.decompressor(number).decompress(value[3:]))

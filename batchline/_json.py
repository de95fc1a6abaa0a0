"""JSON bytes that are held for a while: a chunk of results on its way to Redis, a job's encoded requests."""

from __future__ import annotations

from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    """`orjson.dumps` in a bytes object of its own size.

    orjson 3.13 hands back its working buffer: about 8 KB of memory for a 2 KB document. Measured here, 20,000 results
    held at once took 158 MB that way against 36 MB copied; a copy of 2 KB costs well under a microsecond.
    """
    return bytes(memoryview(orjson.dumps(value)))

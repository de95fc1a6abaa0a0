"""Streaming helpers the OpenAI and Anthropic adapters share: request bodies spooled to disk, result lines read as
they arrive. Neither ever holds a whole batch in memory."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import httpx2
import orjson

log = logging.getLogger("batchline")

READ_SIZE = 1 << 20


class FileChunks:
    """A spooled body as an iterable of chunks that starts from the top every time it is iterated.

    httpx2 iterates a request's content once per attempt, so a retried upload sends the whole body again.
    """

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file

    def __iter__(self) -> Iterator[bytes]:
        self.file.seek(0)
        while chunk := self.file.read(READ_SIZE):
            yield chunk


@contextmanager
def spooled(chunks: Iterable[bytes]) -> Iterator[tuple[IO[bytes], int]]:
    """Write `chunks` to a temporary file and give it back rewound, with its size.

    The size lets the upload carry a `Content-Length`, as the providers' SDKs always send, and the file lets a failed
    upload be sent again; memory stays flat whatever the batch's size. The file is gone when the block ends.
    """
    with tempfile.TemporaryFile(prefix="batchline-") as file:
        size = 0
        for chunk in chunks:
            file.write(chunk)
            size += len(chunk)
        file.flush()
        file.seek(0)
        yield file, size


def iter_lines(response: httpx2.Response) -> Iterator[bytes]:
    """The non-empty lines of a streamed response, as bytes (no text decoding: orjson reads bytes).

    Chunks come as the connection reads them and are split in C; each byte is searched once, so a line of many
    megabytes (a long answer) costs no more than many short ones.
    """
    head: list[bytes] = []  # the start of a line that began in an earlier chunk
    for chunk in response.iter_bytes():
        lines = chunk.split(b"\n")
        if len(lines) == 1:
            head.append(chunk)
            continue
        if head:
            head.append(lines[0])
            lines[0] = b"".join(head)
        head = [lines.pop()]
        for line in lines:
            if line and not line.isspace():
                yield line
    if (last := b"".join(head)) and not last.isspace():
        yield last


def iter_json_lines(response: httpx2.Response, what: str) -> Iterator[Any]:
    """Each line of a JSONL download, parsed: whatever JSON value it holds, or None for a line that is not JSON.

    A download shorter than its Content-Length raises below this; one sent without a length cannot be told from a
    whole one, so a line that is not JSON is taken as the provider's own (reading it again would give it again) and
    the caller counts it as an anomaly, and a request it held ends as one the batch did not run.
    """
    for line in iter_lines(response):
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError:
            log.warning("%s: a line of %d bytes is not JSON; it is counted as an anomaly", what, len(line))
            yield None

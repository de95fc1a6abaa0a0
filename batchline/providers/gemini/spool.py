"""A part's requests on their way to Gemini: inline while the batch stays under the inline limit, a file beyond it.

The requests stream from the store once, so the choice is made while reading them: they are kept in memory while an
inline batch would hold them (at most the 20 MB inline limit), and past that everything goes to a temporary JSONL
file on disk, which the resumable upload then reads a chunk at a time. Memory never grows with the part.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from typing import IO

from . import wire


class PartInput:
    def __init__(self, name: str, inline_limit: int) -> None:
        self.name = name
        self.inline_limit = inline_limit
        self.count = 0
        self.ids: list[str] = []
        self._bodies: list[bytes] = []
        self._inline_size = wire.inline_overhead(name)
        self.file: IO[bytes] | None = None
        self.file_size = 0

    @classmethod
    def read(cls, name: str, inline_limit: int, requests: Iterable[tuple[str, bytes]]) -> PartInput:
        spool = cls(name, inline_limit)
        for custom_id, body in requests:
            spool.add(custom_id, body)
        return spool

    @property
    def inline(self) -> bool:
        return self.file is None

    def add(self, custom_id: str, body: bytes) -> None:
        self.count += 1
        if self.file is not None:
            self._write(wire.file_line(custom_id, body))
            return
        self._inline_size += wire.inline_item_size(custom_id, body) + (1 if self.ids else 0)
        self.ids.append(custom_id)
        self._bodies.append(body)
        if self._inline_size >= self.inline_limit:
            self._spill()

    def _spill(self) -> None:
        """Move what was kept for an inline batch into the file, which takes every request from now on."""
        # Closed by `close()`: the file lives as long as the upload that reads it.
        self.file = tempfile.TemporaryFile(prefix="batchline-gemini-", suffix=".jsonl")  # noqa: SIM115
        for custom_id, body in zip(self.ids, self._bodies, strict=True):
            self._write(wire.file_line(custom_id, body))
        self.ids, self._bodies = [], []

    def _write(self, line: bytes) -> None:
        assert self.file is not None
        self.file.write(line)
        self.file_size += len(line)

    def inline_body(self) -> bytes:
        """The whole `batchGenerateContent` body of an inline batch."""
        items = [wire.inline_item(cid, body) for cid, body in zip(self.ids, self._bodies, strict=True)]
        return wire.inline_batch(self.name, items)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()

    def __enter__(self) -> PartInput:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

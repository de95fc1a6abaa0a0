"""The provider emulator in its own process, so the process being measured pays nothing for serving it.

python -m bench.emulator_server PORT STAGE_SECONDS
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from batchline.emulator import EmulatorConfig, Limits, serve
from batchline.emulator.store import FileRecord

from .common import TEMPLATE

_chunks = FileRecord.chunks


def _generated_once(self: FileRecord) -> Iterator[bytes]:
    """A generated file (a batch's output) is generated at its first download and kept: later downloads send the
    same bytes at loopback speed, so what is measured is the client, not the emulator writing 2 KB answers."""
    if self.content is None and self.generate is not None:
        self.content = b"".join(self.generate())
    return _chunks(self)


FileRecord.chunks = _generated_once  # type: ignore[method-assign]

if __name__ == "__main__":
    port, stage = int(sys.argv[1]), float(sys.argv[2])
    limits = Limits(openai_max_requests=250_000, openai_max_bytes=400_000_000)
    serve("127.0.0.1", port, EmulatorConfig(stage_seconds=stage, response_template=TEMPLATE, limits=limits))

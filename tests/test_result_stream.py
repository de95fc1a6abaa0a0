"""Streamed reads: the same results as `batch_results_sync`, a chunk at a time, in store order or by custom_ids,
sync and async, with memory that does not grow with the job; and the callback helper built on them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from pydantic_ai import ModelRequest

from batchline import (
    BatchResult,
    JobNotFound,
    batch_create_sync,
    batch_result_chunks_sync,
    batch_results_iter,
    batch_results_iter_sync,
    batch_results_sync,
    batch_wait_sync,
    results_callback,
)
from batchline.config import Settings
from batchline.store import Store

from .conftest import ROOT, RealSetup


def finished_job(count: int) -> str:
    requests = [(f"q{i:05d}", [ModelRequest.user_text_prompt(f"q{i}")]) for i in range(count)]
    return batch_wait_sync(batch_create_sync("test", requests)).id


def texts(results: list[BatchResult]) -> list[tuple[str, str | None]]:
    return [(r.custom_id, r.response.text if r.response else None) for r in results]


def test_the_stream_gives_what_the_list_gives_in_store_order(embedded: Settings) -> None:
    job_id = finished_job(2_300)
    listed = batch_results_sync(job_id)
    assert len(listed) == 2_300
    assert texts(list(batch_results_iter_sync(job_id, chunk_size=1000))) == texts(listed)
    sizes = [len(chunk) for chunk in batch_result_chunks_sync(job_id, chunk_size=1000)]
    assert sizes == [1000, 1000, 300]


def test_custom_ids_are_read_lazily_and_answered_in_their_order(embedded: Settings) -> None:
    job_id = finished_job(30)
    taken: list[str] = []

    def wanted() -> Iterator[str]:
        for cid in ["q00029", "nope", "q00003", "q00017", "q00000"]:
            taken.append(cid)
            yield cid

    stream = batch_results_iter_sync(job_id, custom_ids=wanted(), chunk_size=2)
    first = next(stream)
    assert first.custom_id == "q00029" and taken == ["q00029", "nope"]  # one chunk's ids, no more
    assert [r.custom_id for r in stream] == ["q00003", "q00017", "q00000"]  # an id without a result is left out


def test_async_for_gives_the_same_results(embedded: Settings) -> None:
    job_id = finished_job(1_200)

    async def read() -> list[BatchResult]:
        return [result async for result in batch_results_iter(job_id, chunk_size=500)]

    assert texts(asyncio.run(read())) == texts(batch_results_sync(job_id))


def test_an_unknown_job_raises_at_the_call_not_later(embedded: Settings) -> None:
    with pytest.raises(JobNotFound, match="batch_nothing"):
        batch_results_iter_sync("batch_nothing")

    async def read() -> None:
        async for _ in batch_results_iter("batch_nothing"):
            pass

    with pytest.raises(JobNotFound):
        asyncio.run(read())
    with pytest.raises(ValueError, match="chunk_size"):
        list(batch_results_iter_sync(finished_job(1), chunk_size=0))


def test_a_callback_gets_its_chunk_as_a_stream(embedded: Settings) -> None:
    job_id = finished_job(10)

    def save(job_id: str, results: Iterator[BatchResult]) -> list[str]:
        """Save one chunk."""
        assert not isinstance(results, list)
        return [r.custom_id for r in results if r.is_successful]

    task = results_callback(save)
    assert (task.__name__, task.__module__, task.__doc__) == ("save", __name__, "Save one chunk.")
    assert task(job_id, ["q00004", "q00002"]) == ["q00004", "q00002"]


def test_streamed_memory_stays_flat_as_the_job_grows(embedded: Settings, embedded_store: Store) -> None:
    """Python's own allocation peak while reading: the stream's is one chunk's, whatever the job's size; the list's
    grows with it."""
    sys.path.insert(0, str(ROOT))
    from bench.stream import write_job

    def peak(count: int, streamed: bool) -> int:
        job_id = write_job(embedded_store.redis, embedded_store.prefix, count)
        next(batch_results_iter_sync(job_id))  # the codecs are imported and warm before measuring
        tracemalloc.start()
        try:
            if streamed:
                for _ in batch_results_iter_sync(job_id, chunk_size=250):
                    pass
            else:
                batch_results_sync(job_id)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(1_000, True), peak(4_000, True)
    assert large < small * 1.3, (small, large)
    assert peak(4_000, False) > 2.5 * large


PEAK = """
import sys
from batchline.cli import main
if sys.argv[1] == "list":
    from batchline import batch_results_sync
    batch_results_sync(sys.argv[2])
else:
    main(["results", sys.argv[2], "-o", sys.argv[3]])
print(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1])
"""


def test_the_cli_writes_results_as_they_stream(real_setup: RealSetup, tmp_path: Path) -> None:
    """`batchline results -o` of 40,000 results: every line, in order, and the process peaks lower than one that
    reads them as a list (whose peak grows with the job: 50,000 results cost over 50 MB more)."""
    sys.path.insert(0, str(ROOT))
    from bench.stream import write_job

    count = 40_000
    job_id = write_job(real_setup.client, real_setup.settings.key_prefix, count)
    out = tmp_path / "out.jsonl"

    def peak_kb(mode: str) -> int:
        command = [sys.executable, "-c", PEAK, mode, job_id, str(out)]
        done = subprocess.run(command, capture_output=True, text=True, env=real_setup.env, cwd=ROOT, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return int(done.stdout.split()[-1])

    streamed = peak_kb("cli")
    ids = [orjson.loads(line)["custom_id"] for line in out.read_bytes().splitlines()]
    assert ids == [f"req-{i:07d}" for i in range(count)]
    listed = peak_kb("list")
    assert streamed < listed - 15_000, (streamed, listed)

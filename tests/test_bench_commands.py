"""The benchmark commands docs/BENCHMARKS.md gives still run, at smoke sizes, and report what they measured.

They measure nothing here (their figures need the full sizes and a quiet machine): these tests keep them runnable.
The submit benchmark failed for weeks, unseen, after a function it called was renamed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.redis


def bench(*args: str, timeout: float = 240) -> str:
    """Run `python -m <args>`; one that overruns `timeout` is interrupted (SIGINT), so that its own `finally` blocks
    stop the workers, emulators and clusters it started and delete its keys, and then fails the test."""
    process = subprocess.Popen(
        [sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        pytest.fail(f"python -m {' '.join(args)} ran past {timeout} s")
    assert process.returncode == 0, err[-3000:]
    return out


@pytest.mark.timeout(780)
def test_the_main_benchmark_runs_every_section(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    bench("bench", "--quick", "--out", str(out), timeout=660)  # about 2 minutes alone; the suite runs beside it
    report = json.loads(out.read_text())
    sizes = report["sizes"]
    assert report["ingest"]["batchline"]["stored"] == sizes["main"]
    assert report["read"]["identical"] is True
    assert [row["stored"] for row in report["memory"].values()] == sizes["memory"]
    assert report["submit"]["batchline"]["provider_id"]
    assert report["e2e"]["batchline"]["per_s"] > 0
    assert report["e2e"]["batchline"]["status"] == "completed"  # timed to the job's end as well as to its results
    assert report["poll"]["jobs_polled_in_window"] > 0  # all of them on a quiet machine; this one runs tests too
    assert report["cache"]["on"]["sent"] == sizes["cache"] // 2
    assert report["agents"]["batchline"]["succeeded"] == sizes["agents"]
    judged = {t["target"].split()[0].rstrip(",:") for t in report["targets"]}
    assert judged >= {"ingest", "read", "submit", "poll", "cache", "agents"}


def test_the_in_flight_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "in_flight.json"
    bench("bench.in_flight", "--jobs", "20", "--window", "4", "--max-poll-interval", "2", "--out", str(out))
    (row,) = json.loads(out.read_text())["rows"]
    assert row["jobs"] == 20
    assert row["jobs_polled_in_window"] > 0
    assert row["parts_in_due_set"] == 20  # batches that never end: every part still waits for its next poll


def test_the_scale_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    bench("bench.scale", "--counts", "2000", "--out", str(out))
    (row,) = json.loads(out.read_text())["rows"]
    assert row["requests"] == 2000
    assert len(row["worker_peak_rss_mb"]) == 4
    assert 0 < row["results_hash_bytes_per_result"] < row["raw_body_bytes_per_result"]


def test_the_stream_and_compact_benchmarks_run() -> None:
    assert "| stream | 1,000 |" in bench("bench.stream", "--counts", "1000", "--list-up-to", "1000")
    compact = bench("bench.compact", "--copies", "20").splitlines()
    rows = [line for line in compact if line.startswith("{")]
    assert len(rows) >= 10 and all(len(row.split()) >= 8 for row in rows)  # one row of figures per recorded shape
    assert compact[-1].startswith("all shapes together:")

"""Many jobs in flight on one worker: CPU per poll, the worker's memory, and the messages it holds, at several job
counts, all measured in one run.

    uv run python -m bench.in_flight --jobs 1000,10000 [--window 40] [--max-poll-interval 30]

For each count: a real worker (`celery -A batchline.worker worker --concurrency=2`, Redis broker and store) and an
emulator whose batches never end; `count` one-request jobs made through `batch_create_sync`, submitted by the
worker; once every part has been polled, a window of `--window` seconds in which the emulator counts its status
calls (`GET /v1/batches/<id>`) and /proc the CPU of the worker's main and pool processes. Polls grow by half from
2 s up to `--max-poll-interval`, so the larger count asks for more polls per second. The worker's RSS (main and
pool processes) is read at the window's end, and `inspect` counts the messages the worker holds (scheduled and
reserved). Each count gets its own key prefix and queue, deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from .common import MODEL_STRING, PROMPT, RESULTS, EmulatorProcess
from .harness import Bench
from .run import machine
from .worker import CONCURRENCY, Worker, _app, _apply_env, _part_polls, poll_window


def in_flight(jobs: int, window: float, max_interval: float) -> dict[str, Any]:
    from pydantic_ai.messages import ModelRequest

    from batchline import batch_create_sync
    from batchline.runtime import runtime_for

    bench = Bench(quick=False, repeat=1)
    emulator = EmulatorProcess(stage_seconds=10 * 24 * 3600.0)
    env = bench.env(emulator.openai_url, BATCHLINE_MAX_POLL_INTERVAL=str(max_interval))
    _apply_env(env)
    app = _app(env)
    worker = Worker(env, bench.tmp / "worker-in-flight.log")
    try:
        worker.wait_ready(app)
        rss_idle = worker.rss_mb()
        store = runtime_for(app).store
        started = time.monotonic()
        ids = [
            batch_create_sync(
                MODEL_STRING, [(f"q{n}", [ModelRequest.user_text_prompt(PROMPT)])], poll_interval=2.0, submit_wait=0
            ).id
            for n in range(jobs)
        ]
        created_s = time.monotonic() - started
        deadline = time.monotonic() + 1800
        while (unpolled := sum(1 for polls in _part_polls(store, ids) if polls == 0)) and time.monotonic() < deadline:
            time.sleep(1.0)
        if unpolled:
            raise RuntimeError(f"{unpolled} of {jobs} jobs were never polled")
        first_polls_s = time.monotonic() - started
        time.sleep(max_interval)  # every job past its first few polls: the steady state
        polled = poll_window(store, ids, emulator, worker, window)
        rss = worker.rss_mb()
        inspect = app.control.inspect(timeout=2.0)
        held = sum(len(v) for v in (inspect.scheduled() or {}).values())
        held += sum(len(v) for v in (inspect.reserved() or {}).values())
        due = getattr(runtime_for(app), "due", None)  # None on a batchline from before the due set (a reference run)
        waiting = int(store.redis.zcard(due.key)) if due is not None else None
    finally:
        worker.stop()
        emulator.stop()
        bench.cleanup()
    return {
        "jobs": jobs,
        "create_s": created_s,
        "all_polled_after_s": first_polls_s,
        **polled,
        "worker_rss_idle_mb": rss_idle,
        "worker_rss_mb": rss,
        "messages_held": held,
        "parts_in_due_set": waiting,
        "concurrency": CONCURRENCY,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.in_flight", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", default="1000,10000", help="comma-separated job counts")
    parser.add_argument("--window", type=float, default=40.0, help="seconds of measuring per count")
    parser.add_argument("--max-poll-interval", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "in_flight.json")
    options = parser.parse_args()
    rows = [in_flight(int(n), options.window, options.max_poll_interval) for n in options.jobs.split(",")]
    print(json.dumps({"machine": machine()}, indent=1))
    print("| jobs | polls/s | CPU ms/poll | jobs polled in window | worker RSS MB (idle) | messages held | due set |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        per_poll = "-" if r["cpu_ms_per_poll"] is None else f"{r['cpu_ms_per_poll']:.2f}"  # no poll in the window
        print(
            f"| {r['jobs']:,} | {r['polls_per_s']:.0f} | {per_poll} | {r['jobs_polled_in_window']:,} | "
            f"{r['worker_rss_mb']:.0f} ({r['worker_rss_idle_mb']:.0f}) | {r['messages_held']} | "
            f"{r['parts_in_due_set'] if r['parts_in_due_set'] is not None else '-'} |"
        )
    first, last = rows[0], rows[-1]
    growth = (
        f"{last['jobs']:,} vs {first['jobs']:,} jobs: worker RSS x{last['worker_rss_mb'] / first['worker_rss_mb']:.2f}"
    )
    if first["cpu_ms_per_poll"] and last["cpu_ms_per_poll"]:
        growth += f", CPU per poll x{last['cpu_ms_per_poll'] / first['cpu_ms_per_poll']:.2f}"
    print(growth)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

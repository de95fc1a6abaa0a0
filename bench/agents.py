"""Agents at batch prices, side by side: the same runs (two tool rounds each, three model requests) through
pydantic-ai's in-process `BatchModelRequests` and through batchline's fleet (`batchline.agents.run_batch`, runs
resumed on a real worker), against the same emulator.

Each side reports the provider batches it made (from the emulator), its wall time from the first run started to the
last ended, and the peak RSS of the process holding the runs: pydantic-ai's whole process, which holds every run's
state and waits in its event loop; for batchline, the caller (which holds nothing once the job is stored) and, beside
it, the worker's processes (which hold one round at a time).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from .common import EmulatorProcess, delete_prefix, peak_rss_mb
from .worker import Worker, _app, _apply_env

if TYPE_CHECKING:
    from .harness import Bench

POLL = 0.05
WAIT = 5.0
"""Both sides flush a round at `max_requests` (every run) or after this long, whichever comes first."""


def agents_side_by_side(bench: Bench, runs: int) -> dict[str, Any]:
    emulator = EmulatorProcess()
    env = bench.env(emulator.openai_url, BATCHLINE_ALLOWED_AGENTS="bench.agent_app")
    args = {"runs": runs}
    out: dict[str, Any] = {"runs": runs}
    try:
        before = emulator.stats()["openai"]["batches_created"]
        out["pydantic_ai"] = bench.run("agents_pydantic", args, env)
        after = emulator.stats()["openai"]["batches_created"]
        out["pydantic_ai"]["batches"] = (after - before) / bench.repeat
        _apply_env(env)
        app = _app(env)
        worker = Worker(env, bench.tmp / "worker-agents.log")
        try:
            worker.wait_ready(app)
            before = after
            peak = [0.0]
            sampling = True

            def sample() -> None:
                while sampling:
                    peak[0] = max(peak[0], worker.rss_mb())
                    time.sleep(0.2)

            import threading

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            out["batchline"] = bench.run("agents_batchline", args, env)
            sampling = False
            sampler.join()
            out["batchline"]["batches"] = (emulator.stats()["openai"]["batches_created"] - before) / bench.repeat
            out["batchline"]["worker_peak_rss_mb"] = peak[0]
        finally:
            worker.stop()
    finally:
        emulator.stop()
        delete_prefix(bench.redis, bench.prefix)
    ours, theirs = out["batchline"], out["pydantic_ai"]
    out["ratios"] = {
        "wall": ours["wall_s"] / theirs["wall_s"],
        "holder_rss": ours["peak_rss_mb"] / theirs["peak_rss_mb"],
    }
    return out


def agents_pydantic(args: dict[str, Any]) -> dict[str, Any]:
    """pydantic-ai's own batching: every run in this process, sharing one `BatchModelRequests` pool."""
    from datetime import timedelta

    from pydantic_ai.capabilities import BatchModelRequests

    from .agent_app import PROMPT, agent

    runs = int(args["runs"])
    batching = BatchModelRequests(
        max_requests=runs,
        max_wait=timedelta(seconds=WAIT),
        poll_interval=timedelta(seconds=POLL),
        max_poll_interval=timedelta(seconds=1),
    )

    async def all_runs() -> list[int]:
        async with batching:
            results = await asyncio.gather(
                *(agent.run(PROMPT, deps=f"run-{i}".upper(), capabilities=[batching]) for i in range(runs))
            )
        return [r.usage.tool_calls for r in results]

    start = time.perf_counter()
    tool_calls = asyncio.run(all_runs())
    wall = time.perf_counter() - start
    assert tool_calls == [2] * runs, tool_calls[:5]  # two tool rounds each
    return {"wall_s": wall, "peak_rss_mb": peak_rss_mb(), "succeeded": len(tool_calls)}


def agents_batchline(args: dict[str, Any]) -> dict[str, Any]:
    """batchline's fleet: the runs stored and started from here, every round taken on by the worker."""
    from batchline import agents

    from .agent_app import PROMPT

    runs = int(args["runs"])
    start = time.perf_counter()
    batch = agents.run_batch_sync(
        "bench.agent_app:agent",
        [(f"run-{i}", PROMPT) for i in range(runs)],
        deps="bench.agent_app:make_deps",
        max_requests=runs,
        max_wait=WAIT,
        poll_interval=POLL,
    )
    created = time.perf_counter() - start
    while not (status := agents.status_sync(batch.id)).is_complete:
        time.sleep(0.05)
    wall = time.perf_counter() - start
    assert status.agent is not None and status.agent.succeeded == runs, status
    assert status.agent.tool_calls == 2 * runs, status  # two tool rounds each
    return {"wall_s": wall, "create_s": created, "peak_rss_mb": peak_rss_mb(), "succeeded": status.agent.succeeded}

"""The response cache's scenario: one job of `count` requests of which half repeat an earlier one, run end to end
through a real worker against the emulator, without the cache, with it (empty), and again with it (warm).

Each run reports what the emulator received (requests, batches), what the job itself reports it cost (its usage and
its cost at batch prices) and its wall time from `batch_create_sync` to the job's end; the ratios are against the run
without the cache, measured in the same run of the benchmark.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .common import MODEL_STRING, PROMPT, EmulatorProcess, delete_prefix
from .worker import Worker, _app, _apply_env

if TYPE_CHECKING:
    from .harness import Bench

MODES = (("off", False), ("on", True), ("warm", True))
"""Without the cache; with it, empty at the start; with it again, holding the answers of the run before."""


def repeated_requests(count: int) -> list[tuple[str, list[Any]]]:
    """`count` requests, half of them repeats: request i asks question i % (count // 2)."""
    from pydantic_ai.messages import ModelRequest

    distinct = count // 2
    return [(f"req-{i:06d}", [ModelRequest.user_text_prompt(f"{PROMPT} ({i % distinct})")]) for i in range(count)]


def cache_savings(bench: Bench, count: int) -> dict[str, Any]:
    from batchline import batch_create_sync, batch_status_sync
    from batchline.runtime import runtime_for

    emulator = EmulatorProcess()
    env = bench.env(emulator.openai_url)
    _apply_env(env)
    app = _app(env)
    worker = Worker(env, bench.tmp / "worker-cache.log")
    requests = repeated_requests(count)
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode, _ in MODES}
    try:
        worker.wait_ready(app)
        store = runtime_for(app).store
        warm = batch_create_sync(MODEL_STRING, requests[:10], submit_wait=0)  # the pool's imports and clients
        while not store.load_job(warm.id).state.is_final:
            time.sleep(0.05)
        for _ in range(bench.repeat):
            delete_prefix(bench.redis, f"{bench.prefix}cache:")  # each repeat starts with an empty cache
            for mode, cache in MODES:
                before = emulator.stats()["openai"]
                start = time.perf_counter()
                batch = batch_create_sync(MODEL_STRING, requests, submit_wait=0, cache=cache)
                created = time.perf_counter() - start
                while not store.load_job(batch.id).state.is_final:
                    time.sleep(0.01)
                wall = time.perf_counter() - start
                after = emulator.stats()["openai"]
                status = batch_status_sync(batch.id)
                runs[mode].append(
                    {
                        "wall_s": wall,
                        "create_s": created,
                        "sent": after["requests_received"] - before["requests_received"],
                        "batches": after["batches_created"] - before["batches_created"],
                        "succeeded": status.completed_count,
                        "cached": status.cached_count,
                        "input_tokens": status.usage.input_tokens,
                        "output_tokens": status.usage.output_tokens,
                        "cost_usd": float(status.cost) if status.cost is not None else None,
                        "status": str(status.status),
                    }
                )
                delete_prefix(bench.redis, f"{bench.prefix}job:{batch.id}")  # Redis holds one job at a time
    finally:
        worker.stop()
        emulator.stop()
    from .harness import median_of

    figures = {mode: median_of(mode_runs) for mode, mode_runs in runs.items()}
    base = figures["off"]
    for mode in ("on", "warm"):
        fig = figures[mode]
        fig["vs_off"] = {
            "sent": fig["sent"] / base["sent"],
            "cost": fig["cost_usd"] / base["cost_usd"] if fig["cost_usd"] is not None and base["cost_usd"] else None,
            "wall": fig["wall_s"] / base["wall_s"],
        }
    return {"count": count, "distinct": count // 2, **figures}

"""The benchmark: every scenario of issue 7, side by side, in one run, against the emulator and a real Redis.

    uv run python -m bench            # the full run (about 10 minutes on 2 cores, 2 of them the cache scenario)
    uv run python -m bench --quick    # a smoke run with small batches, once each
    uv run python -m bench --only cache    # the response cache: 100,000 requests, half of them repeats
    uv run python -m bench --only agents   # 1,000 agent runs: pydantic-ai's BatchModelRequests beside the fleet

It prints a table and writes bench/results/latest.json. Each measured step runs in its own process (its peak RSS is
its own) `--repeat` times; the table shows medians, and every ratio compares figures of this same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import redis

from .agents import agents_side_by_side
from .cache import cache_savings
from .common import (
    REDIS_URL,
    RESULTS,
    ROOT,
    EmulatorBatch,
    EmulatorProcess,
    delete_prefix,
    download,
    make_batch,
    request_body,
)
from .harness import Bench, median_of
from .worker import end_to_end, poll_scale


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    info = redis.Redis.from_url(REDIS_URL).info("server")
    versions = {
        name: metadata.version(name)
        for name in ("pydantic-ai-slim", "openai", "orjson", "redis", "hiredis", "httpx2", "celery")
    }
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / (1 << 20), 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "redis_server": info.get("redis_version"),
        "versions": versions,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small batches, once each: a smoke run")
    parser.add_argument("--repeat", type=int, default=None, help="runs of each scenario (default 3; --quick 1)")
    parser.add_argument(
        "--only", default="", help="comma-separated sections: ingest,read,memory,submit,e2e,poll,cache,agents"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    options = parser.parse_args()
    repeat = options.repeat or (1 if options.quick else 3)
    only = {s for s in options.only.split(",") if s}
    bench = Bench(options.quick, repeat)
    sizes: dict[str, Any] = (
        {
            "main": 5_000,
            "memory": [1_000, 5_000, 20_000],
            "submit": 5_000,
            "e2e": 2_000,
            "poll": 100,
            "window": 10.0,
            "cache": 10_000,
            "agents": 200,
        }
        if options.quick
        else {
            "main": 50_000,
            "memory": [5_000, 50_000, 200_000],
            "submit": 50_000,
            "e2e": 10_000,
            "poll": 1_000,
            "window": 30.0,
            "cache": 100_000,
            "agents": 1_000,
        }
    )

    def want(section: str) -> bool:
        return not only or section in only

    report: dict[str, Any] = {"machine": machine(), "quick": options.quick, "repeat": repeat, "sizes": sizes}
    started = time.time()
    emulator = EmulatorProcess()
    try:
        env = bench.env(emulator.openai_url)
        body = request_body()
        main_n = sizes["main"]
        batches: dict[int, EmulatorBatch] = {}

        def batch_of(count: int) -> EmulatorBatch:
            if count not in batches:
                batches[count] = make_batch(emulator.openai_url, count, body)
            return batches[count]

        if want("ingest") or want("read"):
            batch = batch_of(main_n)
            path = bench.tmp / "output.jsonl"
            size = download(emulator.openai_url, batch.output_file_id, path)
            ours, job_id = bench.ingest(batch, env)
            ingest: dict[str, Any] = {"output_mb": size / 1e6, "batchline": ours}
            if want("ingest"):
                floor_args = {"redis_url": REDIS_URL, "key": f"{bench.prefix}floor", "path": str(path)}
                floor_runs = []
                for _ in range(repeat):
                    bench.redis.unlink(floor_args["key"])
                    floor_runs.append(bench.run("ingest_floor", floor_args, env, times=1))
                ingest["floor"] = median_of(floor_runs)
                ingest["pydantic_ai"] = bench.run(
                    "ingest_pydantic",
                    {
                        "openai_url": emulator.openai_url,
                        "batch_id": batch.id,
                        "input_file_id": batch.input_file_id,
                        "output_file_id": batch.output_file_id,
                        "created_at": batch.created_at,
                        "count": batch.count,
                    },
                    env,
                )
                report["ingest"] = ingest
            if want("read"):
                report["read"] = bench.run("read", {"redis_url": REDIS_URL, "job_id": job_id}, env)
            path.unlink()
        if want("memory"):
            memory = {}
            for count in sizes["memory"]:
                if count == main_n and "ingest" in report:
                    memory[str(count)] = report["ingest"]["batchline"]
                else:
                    memory[str(count)] = bench.ingest(batch_of(count), env)[0]
                delete_prefix(bench.redis, bench.prefix)
            report["memory"] = memory
        delete_prefix(bench.redis, bench.prefix)
        if want("submit"):
            args = {"count": sizes["submit"], "openai_url": emulator.openai_url, "redis_url": REDIS_URL}
            report["submit"] = {
                "batchline": bench.run("submit_batchline", args, env),
                "pydantic_ai": bench.run("submit_pydantic", args, env),
            }
            delete_prefix(bench.redis, bench.prefix)
        if want("e2e"):
            report["e2e"] = end_to_end(bench, emulator, body, sizes["e2e"])
            delete_prefix(bench.redis, bench.prefix)
    except BaseException:
        bench.cleanup()  # a failed run leaves no keys or scratch files behind either
        raise
    finally:
        emulator.stop()
    try:
        if want("poll"):
            report["poll"] = poll_scale(bench, sizes["poll"], sizes["window"])
        if want("cache"):
            report["cache"] = cache_savings(bench, sizes["cache"])
        if want("agents"):
            report["agents"] = agents_side_by_side(bench, sizes["agents"])
    finally:
        bench.cleanup()
    report["elapsed_s"] = time.time() - started
    from .report import table, verdicts

    report["targets"] = verdicts(report)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(report, indent=2))
    print(table(report))
    print(f"\nfigures written to {options.out}")

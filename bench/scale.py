"""A million requests through the fleet: one job of `count` requests (parts of 50,000, the OpenAI batch limit) made
by `batch_create_sync`, run by 4 worker processes, its results stored in a 3-master Redis Cluster.

    uv run python -m bench.scale --counts 100000,1000000

For each count: a fresh cluster (`redis-server --cluster-enabled yes` on free ports, as the tests start it), the
emulator (batches end at once; it makes the answers at the first download), the broker on the local Redis, and 4
`celery -A batchline.worker worker --concurrency=1` processes. Reported: wall time from the call to
`batch_create_sync` to the last result stored, requests per second per core of the machine, each worker's peak RSS
(its main and pool process, VmHWM), and Redis memory per stored result: the results hash's `MEMORY USAGE` and the
used memory the shards gained, against the bytes of the provider bodies it holds (every stored value unpacked).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import MODEL_STRING, PROMPT, RESULTS, ROOT, EmulatorProcess
from .harness import Bench
from .run import machine
from .worker import Worker, _app, _apply_env

WORKERS = 4


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _shards_used(cluster: Any) -> int:
    return sum(int(node.redis_connection.info("memory")["used_memory"]) for node in cluster.get_primaries())


def run(count: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from pydantic_ai.messages import ModelRequest

    from batchline import batch_create_sync, batch_status_sync
    from batchline.compact import unpack
    from batchline.runtime import runtime_for
    from tests.redis_cluster import redis_cluster

    bench = Bench(quick=False, repeat=1)
    emulator = EmulatorProcess(stage_seconds=0.0)
    with tempfile.TemporaryDirectory() as workdir, redis_cluster(Path(workdir)) as cluster_url:
        env = bench.env(emulator.openai_url, BATCHLINE_REDIS_URL=cluster_url)
        _apply_env(env)
        app = _app(env)
        workers = [Worker(env, bench.tmp / f"worker-scale-{n}.log", concurrency=1) for n in range(WORKERS)]
        try:
            for worker in workers:
                worker.wait_ready(app)
            store = runtime_for(app).store
            cluster = store.redis
            used_before = _shards_used(cluster)
            requests = [(f"r{i:07d}", [ModelRequest.user_text_prompt(f"{PROMPT} ({i})")]) for i in range(count)]
            start = time.perf_counter()
            batch = batch_create_sync(MODEL_STRING, requests, submit_wait=0)
            created = time.perf_counter() - start
            del requests
            while store.result_count(batch.id) < count:
                time.sleep(0.2)
            wall = time.perf_counter() - start
            status = batch_status_sync(batch.id)
            parts = store.load_job(batch.id).parts
            peaks = [max(_peak_rss_mb(pid) for pid in worker.pids()) for worker in workers]
            mains = [_peak_rss_mb(worker.process.pid) for worker in workers]
            key = store.job_key(batch.id, ":res")
            hash_bytes = int(cluster.memory_usage(key, samples=0) or 0)
            used_after = _shards_used(cluster)
            raw = 0
            for custom_id, value in cluster.hscan_iter(key, count=5000):
                raw += len(unpack(custom_id.decode(), value).body or b"")
        finally:
            for worker in workers:
                worker.stop()
            emulator.stop()
            bench.cleanup()
    cores = os.cpu_count() or 1
    return {
        "requests": count,
        "parts": parts,
        "status": str(status.status),
        "create_s": created,
        "wall_s": wall,
        "requests_per_s": count / wall,
        "requests_per_s_per_core": count / wall / cores,
        "worker_peak_rss_mb": peaks,
        "worker_main_peak_rss_mb": mains,
        "raw_body_bytes_per_result": raw / count,
        "results_hash_bytes_per_result": hash_bytes / count,
        "shards_used_bytes_per_result": (used_after - used_before) / count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="100000,1000000", help="comma-separated request counts")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    options = parser.parse_args()
    rows = [run(int(n)) for n in options.counts.split(",")]
    print(json.dumps({"machine": machine()}, indent=1))
    print(
        "| requests | wall s | create s | req/s | req/s/core | worker peak RSS MB | raw body B/result | "
        "results hash B/result | shards' growth B/result |"
    )
    print("|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for r in rows:
        rss = ", ".join(f"{v:.0f}" for v in r["worker_peak_rss_mb"])
        print(
            f"| {r['requests']:,} | {r['wall_s']:.1f} | {r['create_s']:.1f} | {r['requests_per_s']:,.0f} | "
            f"{r['requests_per_s_per_core']:,.0f} | {rss} | {r['raw_body_bytes_per_result']:.0f} | "
            f"{r['results_hash_bytes_per_result']:.0f} | {r['shards_used_bytes_per_result']:.0f} |"
        )
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        grow = last["requests"] / first["requests"]
        print(
            f"{last['requests']:,} vs {first['requests']:,} ({grow:.0f}x the requests): wall x"
            f"{last['wall_s'] / first['wall_s']:.2f}, worst worker peak RSS x"
            f"{max(last['worker_peak_rss_mb']) / max(first['worker_peak_rss_mb']):.2f}, stored bytes per result x"
            f"{last['results_hash_bytes_per_result'] / first['results_hash_bytes_per_result']:.2f}"
        )
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

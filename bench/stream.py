"""Peak memory of reading a job's results: streamed (`batch_results_iter_sync`) against one list
(`batch_results_sync`), at several result counts.

    uv run python -m bench.stream --counts 50000,1000000 [--list-up-to 50000]

Each count gets a job written straight into the store (no provider: the results are what a fetch stores, one
OpenAI Responses body per request with its own answer text of about 700 characters), then each read runs in its own
process, whose peak RSS (`ru_maxrss`) and RSS before the read are reported. The job's keys are deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import redis

from .common import MODEL, MODEL_STRING, REDIS_URL, ROOT, delete_prefix, emit, parse_result, peak_rss_mb, rss_mb

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "lambda", "sigma", "omega"]


def body_of(template: dict[str, Any], i: int) -> bytes:
    """A Responses body whose text differs per request (a real answer's words are its own)."""
    words = " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(100))
    template["output"][0]["content"][0]["text"] = f"Answer {i}: {words}."
    template["id"] = f"resp_{i:048x}"
    return orjson.dumps(template)


def write_job(client: redis.Redis, prefix: str, count: int) -> str:
    """A completed job of `count` succeeded results, as the pipeline leaves it."""
    from pydantic_ai.models import ModelRequestParameters

    from batchline.codec import PARAMS
    from batchline.records import JobRecord, PartState
    from batchline.store import Store
    from batchline.types import BatchStatus

    sys.path.insert(0, str(ROOT / "scripts"))
    from build_result_dictionary import responses_body

    store = Store(client, prefix)
    job_id = f"batch_{uuid.uuid4().hex}"
    ids = [f"req-{i:07d}" for i in range(count)]
    record = JobRecord(
        model=MODEL_STRING,
        total=count,
        created_at=time.time(),
        params=PARAMS.dump_json(ModelRequestParameters()).decode(),
    )
    store.create_job(job_id, record, ((cid, b"", None) for cid in ids), [(MODEL, ids)])
    template = orjson.loads(responses_body())

    def results() -> Iterator[tuple[str, str, bytes]]:
        for i, cid in enumerate(ids):
            yield cid, "succeeded", body_of(template, i)

    store.add_results(job_id, results(), chunk=2000)
    store.set_part(job_id, 0, state=PartState.STORED)
    store.transition_job(job_id, BatchStatus.COMPLETED, BatchStatus.PENDING)
    return job_id


def read(args: dict[str, Any]) -> dict[str, Any]:
    """The measured step, in its own process: read every result, streamed or as one list."""
    from batchline import batch_results_iter_sync, batch_results_sync

    job_id = args["job_id"]
    before = rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    count = succeeded = 0
    if args["mode"] == "stream":
        for result in batch_results_iter_sync(job_id):
            count += 1
            succeeded += result.is_successful
    else:
        results = batch_results_sync(job_id)
        count, succeeded = len(results), sum(r.is_successful for r in results)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "mode": args["mode"],
        "count": count,
        "succeeded": succeeded,
        "wall_s": wall,
        "cpu_s": cpu,
        "per_s": count / wall,
        "rss_before_mb": before,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="50000")
    parser.add_argument("--list-up-to", type=int, default=50_000, help="also read as one list up to this count")
    options = parser.parse_args()
    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"blbench-stream-{uuid.uuid4().hex[:8]}:"
    env = {"BATCHLINE_BROKER_URL": REDIS_URL, "BATCHLINE_REDIS_URL": REDIS_URL, "BATCHLINE_KEY_PREFIX": prefix}
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BATCHLINE_")}, **env}
    rows = []
    try:
        for count in (int(c) for c in options.counts.split(",")):
            started = time.perf_counter()
            job_id = write_job(client, prefix, count)
            written = time.perf_counter() - started
            res_bytes = client.memory_usage(f"{prefix}job:{job_id}:res", samples=0)
            modes = ["stream", "list"] if count <= options.list_up_to else ["stream"]
            for mode in modes:
                command = [
                    sys.executable,
                    "-m",
                    "bench.stream",
                    "--measure",
                    json.dumps({"job_id": job_id, "mode": mode}),
                ]
                done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
                if done.returncode:
                    raise RuntimeError(done.stdout[-2000:] + done.stderr[-4000:])
                row = parse_result(done.stdout) | {"write_s": written, "res_mb": (res_bytes or 0) / 1e6}
                rows.append(row)
                print(json.dumps(row), flush=True)
            delete_prefix(client, prefix)
    finally:
        delete_prefix(client, prefix)
    print("\n| read | results | peak RSS MB | RSS before MB | wall s | cpu s | per s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['count']:,} | {r['peak_rss_mb']:.0f} | {r['rss_before_mb']:.0f} | {r['wall_s']:.1f} "
            f"| {r['cpu_s']:.1f} | {r['per_s']:,.0f} |"
        )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        emit(read(orjson.loads(sys.argv[2])))
    else:
        main()

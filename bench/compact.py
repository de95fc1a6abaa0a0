"""Redis memory per stored result, compressed (as batchline stores them) against the bodies as they came.

    uv run python -m bench.compact [--copies 2000]

For each recorded provider result shape (tests/fixtures/recorded, cut into bodies as the adapters cut them), stores
`copies` results of that body under distinct custom_ids in one job's results hash, twice: as batchline stores them
now, through `Store.add_results`, and as batchline stored them before (the status letter and the body, as received).
Redis's own `MEMORY USAGE` of each hash (every field counted: SAMPLES 0), divided by `copies`, is the memory per
stored result; the ratio is that over the body's own bytes. Beside it: the stored value's own bytes (the letter, the
mark, the dictionary number and the frame), and what a hash field costs Redis with a one-byte value (the same
custom_ids, a status letter each): the part of a result's memory that no encoding of its body can take away.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path
from typing import Any

import redis

from .common import REDIS_URL

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from build_result_dictionary import recorded_bodies, responses_body


def shapes() -> list[tuple[str, bytes]]:
    """Every distinct non-empty body of the recorded payloads (and one emulator Responses body), named by its start."""
    seen: list[tuple[str, bytes]] = []
    for body in [*recorded_bodies(), responses_body()]:
        if body and body not in (b for _, b in seen):
            seen.append((body[:24].decode(errors="replace"), body))
    return seen


def memory(client: redis.Redis, key: str) -> int:
    return int(client.memory_usage(key, samples=0) or 0)


def measure(copies: int, url: str = REDIS_URL) -> dict[str, Any]:
    from batchline.compact import pack
    from batchline.store import Store

    client = redis.Redis.from_url(url)
    prefix = f"blbench-compact-{uuid.uuid4().hex[:8]}:"
    store = Store(client, prefix=prefix, ttl_seconds=600)
    rows: list[dict[str, Any]] = []
    try:
        for n, (name, body) in enumerate(shapes()):
            job = f"shape{n}"
            store.add_results(job, ((f"req-{i:07d}", "succeeded", body) for i in range(copies)))
            old_key = store.job_key(job, ":old")
            pipe = client.pipeline(transaction=False)
            for start in range(0, copies, 1000):
                pipe.hset(
                    old_key, mapping={f"req-{i:07d}": b"s" + body for i in range(start, min(copies, start + 1000))}
                )
            pipe.expire(old_key, 600)
            pipe.execute()
            stored = memory(client, store.job_key(job, ":res")) / copies
            before = memory(client, old_key) / copies
            client.delete(old_key)
            empty_key = store.job_key(job, ":empty")
            for start in range(0, copies, 1000):
                pipe.hset(empty_key, mapping={f"req-{i:07d}": b"s" for i in range(start, min(copies, start + 1000))})
            pipe.expire(empty_key, 600)
            pipe.execute()
            entry = memory(client, empty_key) / copies
            rows.append(
                {
                    "shape": name,
                    "body_bytes": len(body),
                    "stored_bytes": round(stored, 1),
                    "value_bytes": len(pack("succeeded", body)),
                    "empty_entry_bytes": round(entry, 1),
                    "uncompressed_bytes": round(before, 1),
                    "ratio": round(stored / len(body), 3),
                    "uncompressed_ratio": round(before / len(body), 3),
                }
            )
    finally:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    raw = sum(r["body_bytes"] for r in rows)
    return {
        "copies": copies,
        "shapes": rows,
        "all_ratio": round(sum(r["stored_bytes"] for r in rows) / raw, 3),
        "worst_ratio": max(r["ratio"] for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compact", description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=2000)
    report = measure(parser.parse_args().copies)
    print(
        f"{'shape':<26} {'body B':>8} {'stored B':>9} {'ratio':>6} {'value B':>8} {'entry B':>8} "
        f"{'before B':>9} {'ratio':>6}"
    )
    for r in report["shapes"]:
        print(
            f"{r['shape']:<26} {r['body_bytes']:>8} {r['stored_bytes']:>9} {r['ratio']:>6} {r['value_bytes']:>8} "
            f"{r['empty_entry_bytes']:>8} {r['uncompressed_bytes']:>9} {r['uncompressed_ratio']:>6}"
        )
    print("value B: the stored value's own bytes; entry B: a hash field with a one-byte value, per result")
    print(f"all shapes together: {report['all_ratio']}; worst shape: {report['worst_ratio']}")


if __name__ == "__main__":
    main()

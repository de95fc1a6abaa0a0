"""The benchmark's harness: a run's Redis prefix, environment and temporary files, and each scenario run in a fresh
process with the medians of its figures."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import redis

from .common import (
    API_KEY,
    MODEL,
    MODEL_STRING,
    REDIS_URL,
    RESULTS,
    ROOT,
    EmulatorBatch,
    custom_ids,
    delete_prefix,
    parse_result,
)


class Bench:
    def __init__(self, quick: bool, repeat: int) -> None:
        self.quick = quick
        self.repeat = repeat
        self.token = uuid.uuid4().hex[:8]
        self.prefix = f"blbench-{self.token}:"
        self.redis = redis.Redis.from_url(REDIS_URL)
        self.figures: dict[str, Any] = {}
        self.tmp = RESULTS / f"tmp-{self.token}"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def cleanup(self) -> None:
        """Delete what the run wrote: its keys, its queue (and kombu's bindings, outside the prefix), its files."""
        delete_prefix(self.redis, self.prefix)
        queue = f"blbench-{self.token}"
        delete_prefix(self.redis, queue)
        self.redis.delete(f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        shutil.rmtree(self.tmp, ignore_errors=True)

    def env(self, openai_url: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHLINE_")}
        env.update(
            {
                "BATCHLINE_BROKER_URL": REDIS_URL,
                "BATCHLINE_REDIS_URL": REDIS_URL,
                "BATCHLINE_KEY_PREFIX": self.prefix,
                "BATCHLINE_QUEUE": f"blbench-{self.token}",
                "BATCHLINE_CLEANUP_FILES": "false",
                "OPENAI_BASE_URL": openai_url,
                "OPENAI_API_KEY": API_KEY,
                **extra,
            }
        )
        return env

    def run(self, name: str, args: dict[str, Any], env: dict[str, str], times: int | None = None) -> dict[str, Any]:
        """Run a scenario `times` times (each in a fresh process); medians of every number, and the runs."""
        runs = []
        for _ in range(times or self.repeat):
            command = [sys.executable, "-m", "bench.scenarios", name, json.dumps(args)]
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
            if done.returncode:
                raise RuntimeError(f"{name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
            runs.append(parse_result(done.stdout))
        return median_of(runs)

    # -- ingest -----------------------------------------------------------------------------------------------------
    def ingest_job(self, batch: EmulatorBatch) -> str:
        """A job whose only part the provider has completed: where `batchline.fetch` starts."""
        from pydantic_ai.models import ModelRequestParameters

        from batchline.codec import PARAMS
        from batchline.providers.openai.wire import to_snapshot
        from batchline.records import JobRecord, PartState
        from batchline.store import Store

        store = Store(self.redis, self.prefix)
        job_id = f"batch_{uuid.uuid4().hex}"
        ids = custom_ids(batch.count)
        record = JobRecord(
            model=MODEL_STRING,
            total=batch.count,
            created_at=time.time(),
            poll_interval=60.0,
            chunk_size=500,
            max_resubmissions=2,
            params=PARAMS.dump_json(ModelRequestParameters()).decode(),
        )
        store.create_job(job_id, record, ((cid, b"", None) for cid in ids), [(MODEL, ids)])
        snapshot = to_snapshot(
            {
                "id": batch.id,
                "status": "completed",
                "input_file_id": batch.input_file_id,
                "output_file_id": batch.output_file_id,
                "request_counts": {"total": batch.count, "completed": batch.count, "failed": 0},
            }
        )
        details = json.dumps(snapshot.details)
        store.set_part(job_id, 0, state=PartState.ENDED, provider_id=batch.id, provider_status="completed")
        store.set_part(job_id, 0, provider_state="completed", completed=batch.count, failed=0, details=details)
        return job_id

    def ingest(self, batch: EmulatorBatch, env: dict[str, str]) -> tuple[dict[str, Any], str]:
        runs, job_id = [], ""
        for _ in range(self.repeat):
            job_id = self.ingest_job(batch)
            args = {"redis_url": REDIS_URL, "job_id": job_id, "count": batch.count}
            runs.append(self.run("ingest_batchline", args, env, times=1))
            assert runs[-1]["stored"] == batch.count, runs[-1]
        return median_of(runs), job_id


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            out[key] = value if all(r[key] == value for r in runs) else [r[key] for r in runs]
        else:
            out[key] = statistics.median(r[key] for r in runs)
    out["runs"] = len(runs)
    if len(runs) > 1 and "wall_s" in runs[0]:
        out["wall_s_all"] = [round(r["wall_s"], 3) for r in runs]
    return out

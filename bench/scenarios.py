"""The measured steps, each in its own process so that its peak RSS and CPU time are its own.

    python -m bench.scenarios NAME 'JSON ARGS'

Each prints one `BENCH-RESULT {...}` line: wall seconds, CPU seconds, peak RSS (MB) and what else it knows.
Everything a step needs (imports, clients, input lists) is made before its clock starts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from .common import API_KEY, MODEL, MODEL_STRING, PROMPT, custom_ids, emit, peak_rss_mb, rss_mb


class Clock:
    def __enter__(self) -> Clock:
        self.rss_before = rss_mb()
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0

    def figures(self, count: int) -> dict[str, Any]:
        return {
            "count": count,
            "wall_s": self.wall,
            "cpu_s": self.cpu,
            "per_s": count / self.wall,
            "rss_before_mb": self.rss_before,
            "peak_rss_mb": peak_rss_mb(),
        }


def _runtime(args: dict[str, Any]) -> Any:
    import redis

    from batchline.config import Settings
    from batchline.runtime import Runtime
    from batchline.store import Store

    settings = Settings.load({}, dict(os.environ))
    return Runtime(settings, Store(redis.Redis.from_url(args["redis_url"]), settings.key_prefix, settings.ttl_seconds))


def _pydantic_model(openai_url: str) -> Any:
    from pydantic_ai.models.openai import OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    return OpenAIResponsesModel(MODEL, provider=OpenAIProvider(base_url=openai_url, api_key=API_KEY))


# -- ingest ---------------------------------------------------------------------------------------------------------
def ingest_batchline(args: dict[str, Any]) -> dict[str, Any]:
    """`pipeline.fetch` of an ended part, as the `batchline.fetch` task runs it: download, parse, store."""
    from batchline import pipeline

    runtime = _runtime(args)
    provider = runtime.provider(MODEL_STRING)
    _ = provider.http  # the worker's client exists before its first fetch
    with Clock() as clock:
        pipeline.fetch(runtime, args["job_id"], 0)
    stored = runtime.store.result_count(args["job_id"])
    return clock.figures(args["count"]) | {"stored": stored}


def ingest_floor(args: dict[str, Any]) -> dict[str, Any]:
    """The floor: the same bytes from a local file, parsed by orjson, written to Redis with pipelining; no HTTP."""
    import redis

    client = redis.Redis.from_url(args["redis_url"])
    key = args["key"]
    count = 0
    with Clock() as clock, open(args["path"], "rb") as file:
        pipe = client.pipeline(transaction=False)
        mapping: dict[Any, bytes] = {}  # redis-py's hset wants its own (invariant) key type
        for line in file:
            value = orjson.loads(line)
            mapping[value["custom_id"]] = orjson.dumps(value["response"]["body"])
            if len(mapping) == 500:
                pipe.hset(key, mapping=mapping)
                pipe.execute()
                count += len(mapping)
                mapping = {}
        if mapping:
            pipe.hset(key, mapping=mapping)
            pipe.execute()
            count += len(mapping)
    return clock.figures(count) | {"stored": client.hlen(key)}


def ingest_pydantic(args: dict[str, Any]) -> dict[str, Any]:
    """pydantic-ai's own `batch_results` plus `batch_decode` on the same emulator batch, in one process."""
    from pydantic_ai.models.batch import Batch, BatchRequest
    from pydantic_ai.models.openai._batch import batch_group

    model = _pydantic_model(args["openai_url"])
    batch = Batch(
        id=args["batch_id"],
        model_name=MODEL,
        provider_name="openai",
        group=batch_group(model),
        status="ended",
        created_at=datetime.fromtimestamp(args["created_at"], tz=UTC),
        request_count=args["count"],
        provider_details={
            "status": "completed",
            "input_file_id": args["input_file_id"],
            "output_file_id": args["output_file_id"],
        },
    )

    async def main() -> tuple[float, int]:
        start = time.perf_counter()
        results = await model.batch_results(batch)
        fetched = time.perf_counter() - start
        decoded = [model.batch_decode(r, BatchRequest(custom_id=r.custom_id, messages=[])) for r in results]
        return fetched, len(decoded)

    with Clock() as clock:
        fetched, count = asyncio.run(main())
    return clock.figures(count) | {"results_s": fetched, "decode_s": clock.wall - fetched}


# -- read -----------------------------------------------------------------------------------------------------------
def _normalised(response: Any) -> Any:
    """pydantic-ai stamps `timestamp` with the time of decoding; every other field is compared as it is."""
    return dataclasses.replace(response, timestamp=datetime(2000, 1, 1, tzinfo=UTC))


def read(args: dict[str, Any]) -> dict[str, Any]:
    """`batch_results_sync` of a stored job, beside pydantic-ai's `batch_decode` of the same stored results."""
    from pydantic_ai.models.batch import BatchRequest, BatchResult

    from batchline import batch_results_sync
    from batchline.providers.openai.codec import codec_model

    runtime = _runtime(args)
    job_id = args["job_id"]
    ids = list(runtime.store.request_ids(job_id))
    stored = [r for r in runtime.store.results(job_id, ids) if r is not None]
    ours_first = args.get("ours_first", True)
    model = codec_model(MODEL)
    inputs = [BatchResult(custom_id=r.custom_id, status=r.status, body=r.body.decode()) for r in stored]

    def pydantic_decode() -> tuple[list[Any], float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        out = [model.batch_decode(r, BatchRequest(custom_id=r.custom_id, messages=[])) for r in inputs]
        return out, time.perf_counter() - start, time.process_time() - cpu

    if not ours_first:
        theirs, their_wall, their_cpu = pydantic_decode()
    with Clock() as clock:
        ours = batch_results_sync(job_id)
    if ours_first:
        theirs, their_wall, their_cpu = pydantic_decode()
    identical = [a.custom_id for a in ours] == [r.custom_id for r in inputs] and all(
        _normalised(a.response) == _normalised(b) for a, b in zip(ours, theirs, strict=True)
    )
    return clock.figures(len(ours)) | {
        "pydantic_wall_s": their_wall,
        "pydantic_cpu_s": their_cpu,
        "pydantic_per_s": len(theirs) / their_wall,
        "identical": identical,
    }


# -- submit ---------------------------------------------------------------------------------------------------------
def _requests(count: int) -> list[tuple[str, list[Any]]]:
    from pydantic_ai.messages import ModelRequest

    return [(cid, [ModelRequest.user_text_prompt(f"{PROMPT} ({cid})")]) for cid in custom_ids(count)]


def submit_batchline(args: dict[str, Any]) -> dict[str, Any]:
    """`batch_create_sync` (encode, store) and the `batchline.submit` step (spool, upload, create), in one process."""
    from batchline import batch_create_sync, pipeline
    from batchline.caller import caller_runtime
    from batchline.providers.http import HTTPTransport

    requests = _requests(args["count"])
    _, runtime = caller_runtime()
    provider = runtime.provider(MODEL_STRING)
    assert isinstance(provider, HTTPTransport)
    provider.http  # noqa: B018  (the worker's client exists before its first submit)
    with Clock() as clock:
        batch = batch_create_sync(MODEL_STRING, requests, submit_wait=0)
        created = time.perf_counter() - clock.wall0
        nexts = list(pipeline.submit(runtime, batch.id))
    assert nexts, "the part was not created"
    part = runtime.store.part(batch.id, 0)
    return clock.figures(args["count"]) | {"create_s": created, "provider_id": part.provider_id or None}


def submit_pydantic(args: dict[str, Any]) -> dict[str, Any]:
    """pydantic-ai's `batch_encode` of every request, then `batch_create`."""
    from pydantic_ai.models.batch import BatchRequest

    model = _pydantic_model(args["openai_url"])
    requests = [BatchRequest(custom_id=cid, messages=messages) for cid, messages in _requests(args["count"])]

    async def main() -> Any:
        encoded = [await model.batch_encode(r) for r in requests]
        return await model.batch_create(encoded)

    with Clock() as clock:
        batch = asyncio.run(main())
    return clock.figures(args["count"]) | {"provider_id": batch.id}


# -- end to end floor -----------------------------------------------------------------------------------------------
def io_floor(args: dict[str, Any]) -> dict[str, Any]:
    """The raw I/O of a job: upload its input file, create the batch, read it, download and parse the output."""
    import httpx2

    from batchline.providers.openai.wire import ENDPOINT

    data = Path(args["input_path"]).read_bytes()
    headers = {"Authorization": f"Bearer {API_KEY}"}
    count = 0
    with httpx2.Client(base_url=args["openai_url"], headers=headers, timeout=300) as client:
        client.get("/batches", params={"limit": 1})  # the connection is open before the clock starts
        with Clock() as clock:
            upload = {"file": ("bench.jsonl", data, "application/jsonl")}
            file_id = client.post("/files", data={"purpose": "batch"}, files=upload).json()["id"]
            body = {"input_file_id": file_id, "endpoint": ENDPOINT, "completion_window": "24h"}
            batch_id = client.post("/batches", json=body).json()["id"]
            batch = client.get(f"/batches/{batch_id}").json()
            with client.stream("GET", f"/files/{batch['output_file_id']}/content") as response:
                buffer = b""
                for chunk in response.iter_bytes(1 << 20):
                    lines = (buffer + chunk).split(b"\n")
                    buffer = lines.pop()
                    for line in lines:
                        if line:
                            orjson.loads(line)
                            count += 1
                if buffer.strip():
                    orjson.loads(buffer)
                    count += 1
    return clock.figures(count)


from .agents import agents_batchline, agents_pydantic  # noqa: E402  (measured like the others, in a fresh process)

SCENARIOS = {
    "agents_batchline": agents_batchline,
    "agents_pydantic": agents_pydantic,
    "ingest_batchline": ingest_batchline,
    "ingest_floor": ingest_floor,
    "ingest_pydantic": ingest_pydantic,
    "read": read,
    "submit_batchline": submit_batchline,
    "submit_pydantic": submit_pydantic,
    "io_floor": io_floor,
}

if __name__ == "__main__":
    emit(SCENARIOS[sys.argv[1]](orjson.loads(sys.argv[2])))

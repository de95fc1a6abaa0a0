"""What the benchmark's orchestrator and its measured subprocesses share: names, the emulator, batches, Redis."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import orjson

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
MODEL = "gpt-4o-mini"
MODEL_STRING = f"openai:{MODEL}"
API_KEY = "bench-key"
# About 2 KB a result line, so 50,000 results make about 100 MB of output JSONL.
TEMPLATE = "Mock response for {custom_id}. " + "The quick brown fox jumps over the lazy dog; " * 21
PROMPT = "What is 2 + 2? Answer in one long paragraph."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmulatorProcess:
    """`bench.emulator_server` in a subprocess: instant (stage 0) or slow batches."""

    def __init__(self, stage_seconds: float = 0.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.emulator_server", str(self.port), str(stage_seconds)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx2.get(f"{self.url}/_emulator/stats", timeout=1.0)
                return
            except httpx2.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.1)

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx2.get(f"{self.url}/_emulator/stats").json()
        return result

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def request_body() -> bytes:
    """One Responses API body as batchline (through pydantic-ai's `batch_encode`) writes it."""
    from pydantic_ai.messages import ModelRequest
    from pydantic_ai.models.batch import BatchRequest

    from batchline.providers import get_provider

    provider = get_provider(MODEL_STRING)
    return provider.encode(BatchRequest(custom_id="x", messages=[ModelRequest.user_text_prompt(PROMPT)])).body


def custom_ids(count: int) -> list[str]:
    return [f"req-{i:06d}" for i in range(count)]


@dataclass
class EmulatorBatch:
    """A completed batch at the emulator: what batchline's part and pydantic-ai's `Batch` handle both name."""

    id: str
    input_file_id: str
    output_file_id: str
    count: int
    created_at: int


def make_batch(openai_url: str, count: int, body: bytes) -> EmulatorBatch:
    """Upload `count` requests and create their batch; the instant emulator has completed it on the first read."""
    from batchline.providers.openai.wire import ENDPOINT, input_lines

    data = b"".join(input_lines((cid, body) for cid in custom_ids(count)))
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx2.Client(base_url=openai_url, headers=headers, timeout=300) as client:
        upload = {"file": ("bench.jsonl", data, "application/jsonl")}
        file_id = client.post("/files", data={"purpose": "batch"}, files=upload).raise_for_status().json()["id"]
        created = client.post(
            "/batches", json={"input_file_id": file_id, "endpoint": ENDPOINT, "completion_window": "24h"}
        ).raise_for_status()
        batch = client.get(f"/batches/{created.json()['id']}").raise_for_status().json()
    assert batch["status"] == "completed", batch["status"]
    return EmulatorBatch(batch["id"], file_id, batch["output_file_id"], count, int(batch["created_at"]))


def download(openai_url: str, file_id: str, path: Path) -> int:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    size = 0
    url = f"{openai_url}/files/{file_id}/content"
    with httpx2.stream("GET", url, headers=headers, timeout=300) as response, path.open("wb") as out:
        for chunk in response.iter_bytes(1 << 20):
            out.write(chunk)
            size += len(chunk)
    return size


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not `ru_maxrss`: Linux keeps that across exec, so a child would report the
    peak of the process that forked it."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def emit(result: dict[str, Any]) -> None:
    """A measured subprocess's answer: one JSON line on stdout, marked so stray prints do not confuse it."""
    sys.stdout.write("BENCH-RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


def parse_result(stdout: str) -> dict[str, Any]:
    for line in stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            value: dict[str, Any] = json.loads(line[len("BENCH-RESULT ") :])
            return value
    raise RuntimeError(f"no result in the subprocess output:\n{stdout[-3000:]}")


def delete_prefix(client: Any, prefix: str) -> None:
    keys: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}*", count=5000):
        keys.append(key)
        if len(keys) >= 5000:
            client.unlink(*keys)
            keys = []
    if keys:
        client.unlink(*keys)


def json_lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                yield orjson.loads(line)

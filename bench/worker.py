"""The scenarios that need a real worker: poll scale and end to end (`celery -A batchline.worker worker`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import MODEL_STRING, PROMPT, ROOT, EmulatorProcess, custom_ids

if TYPE_CHECKING:
    from .harness import Bench

CONCURRENCY = 2


class Worker:
    def __init__(self, env: dict[str, str], log: Path, concurrency: int = CONCURRENCY) -> None:
        self.log_path = log
        self.log = log.open("ab")
        command = [sys.executable, "-m", "celery", "-A", "batchline.worker", "worker", "--loglevel=WARNING"]
        command += [f"--concurrency={concurrency}", f"--hostname=blbench-{os.getpid()}-{time.time_ns()}@%h"]
        self.process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.concurrency = concurrency

    def wait_ready(self, app: Any, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited:\n{self.log_path.read_text()[-3000:]}")
            if app.control.inspect(timeout=0.5).ping():
                return
            time.sleep(0.2)
        raise RuntimeError("the worker did not become ready")

    def pids(self) -> list[int]:
        """The worker's main process and its pool processes."""
        out = [self.process.pid]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rpartition(")")[2].split()[1]) == self.process.pid:
                    out.append(int(entry.name))
        return out

    def cpu_seconds(self) -> float:
        """User plus system CPU of the worker and its pool processes."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / tick

    def rss_mb(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
            except OSError:
                continue
        return total * os.sysconf("SC_PAGE_SIZE") / (1 << 20)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def _app(env: dict[str, str]) -> Any:
    from celery import Celery

    from batchline import worker
    from batchline.config import Settings

    settings = Settings.load({}, env)
    app = Celery("blbench", set_as_current=False)
    worker.install(app, settings)
    return app


def _apply_env(env: dict[str, str]) -> None:
    """The API in this process reaches the same store and queue as the worker."""
    for key in [k for k in os.environ if k.startswith("BATCHLINE_")]:
        del os.environ[key]
    os.environ.update({k: v for k, v in env.items() if k.startswith(("BATCHLINE_", "OPENAI_"))})


def end_to_end(bench: Bench, emulator: EmulatorProcess, body: bytes, count: int) -> dict[str, Any]:
    """`batch_create_sync` of `count` requests to all results stored, through a real worker; beside its raw I/O."""
    from pydantic_ai.messages import ModelRequest

    from batchline import batch_status_sync
    from batchline.providers.openai.wire import input_lines
    from batchline.runtime import runtime_for

    env = bench.env(emulator.openai_url)
    _apply_env(env)
    app = _app(env)
    worker = Worker(env, bench.tmp / "worker-e2e.log")
    requests = [(cid, [ModelRequest.user_text_prompt(f"{PROMPT} ({cid})")]) for cid in custom_ids(count)]
    runs = []
    try:
        worker.wait_ready(app)
        from batchline import batch_create_sync

        store = runtime_for(app).store
        # A first small job warms the worker's pool processes (their imports, their HTTP client): not measured.
        warm = batch_create_sync(MODEL_STRING, requests[:10], submit_wait=0)
        while store.result_count(warm.id) < 10:
            time.sleep(0.05)
        for _ in range(bench.repeat):
            start = time.perf_counter()
            batch = batch_create_sync(MODEL_STRING, requests, submit_wait=0)
            created = time.perf_counter() - start
            while store.result_count(batch.id) < count:
                time.sleep(0.01)
            wall = time.perf_counter() - start
            # The job is marked ended by the step after the last store (finish, then delivery): timed apart.
            status = batch_status_sync(batch.id)
            while not status.status.is_final and time.perf_counter() - start < wall + 60:
                time.sleep(0.01)
                status = batch_status_sync(batch.id)
            ended = time.perf_counter() - start
            runs.append(
                {
                    "wall_s": wall,
                    "create_s": created,
                    "ended_s": ended,
                    "per_s": count / wall,
                    "status": str(status.status),
                }
            )
    finally:
        worker.stop()
    input_path = bench.tmp / "e2e-input.jsonl"
    input_path.write_bytes(b"".join(input_lines((cid, body) for cid in custom_ids(count))))
    args = {"openai_url": emulator.openai_url, "input_path": str(input_path)}
    from .harness import median_of

    return {"count": count, "batchline": median_of(runs), "io_floor": bench.run("io_floor", args, env)}


def poll_scale(bench: Bench, jobs: int, window: float) -> dict[str, Any]:
    """`jobs` one-request jobs in flight on one worker (slow emulator): CPU per poll, slots held while waiting."""
    from pydantic_ai.messages import ModelRequest

    from batchline import batch_create_sync
    from batchline.records import PartState
    from batchline.runtime import runtime_for

    emulator = EmulatorProcess(stage_seconds=3600.0)
    env = bench.env(emulator.openai_url, BATCHLINE_MAX_POLL_INTERVAL="10")
    _apply_env(env)
    app = _app(env)
    worker = Worker(env, bench.tmp / "worker-poll.log")
    try:
        worker.wait_ready(app)
        store = runtime_for(app).store
        ids = []
        for n in range(jobs):
            batch = batch_create_sync(
                MODEL_STRING, [(f"q{n}", [ModelRequest.user_text_prompt(PROMPT)])], poll_interval=2.0, submit_wait=0
            )
            ids.append(batch.id)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            submitted = sum(1 for job_id in ids if store.part(job_id, 0).state == PartState.SUBMITTED)
            if submitted == jobs:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"only {submitted} of {jobs} jobs were submitted")
        time.sleep(3.0)  # the first polls (after about a second) are under way
        # Window 1: CPU per poll, with nothing else asking the worker anything.
        polled = poll_window(store, ids, emulator, worker, window)
        rss = worker.rss_mb()
        # Window 2: what the worker's slots do while the jobs wait (`inspect` itself costs the worker CPU).
        active: list[int] = []
        scheduled: list[int] = []
        start2 = time.monotonic()
        while time.monotonic() - start2 < min(window, 15.0):
            inspect = app.control.inspect(timeout=1.0)
            active.append(sum(len(v) for v in (inspect.active() or {}).values()))
            scheduled.append(sum(len(v) for v in (inspect.scheduled() or {}).values()))
            time.sleep(0.5)
    finally:
        worker.stop()
        emulator.stop()
    return {
        "jobs": jobs,
        **polled,
        "concurrency": CONCURRENCY,
        "active_samples": active,
        "mean_active": sum(active) / len(active),
        "max_active": max(active),
        "min_free_slots": CONCURRENCY - max(active),
        "mean_free_slots": CONCURRENCY - sum(active) / len(active),
        "scheduled_waiting_median": sorted(scheduled)[len(scheduled) // 2],
        "worker_rss_mb": rss,
    }


def poll_window(store: Any, ids: list[str], emulator: EmulatorProcess, worker: Worker, window: float) -> dict[str, Any]:
    """Polls the emulator answered, the worker's CPU and the jobs polled during `window` seconds."""
    polled0 = _part_polls(store, ids)
    calls0, cpu0 = _polls(emulator), worker.cpu_seconds()
    start = time.monotonic()
    time.sleep(window)
    elapsed = time.monotonic() - start
    polls, cpu = _polls(emulator) - calls0, worker.cpu_seconds() - cpu0
    polled1 = _part_polls(store, ids)
    return {
        "window_s": elapsed,
        "polls": polls,
        "polls_per_s": polls / elapsed,
        "worker_cpu_s": cpu,
        "cpu_ms_per_poll": 1000 * cpu / polls if polls else None,
        "jobs_polled_in_window": sum(1 for a, b in zip(polled0, polled1, strict=True) if b > a),
    }


def _part_polls(store: Any, ids: list[str]) -> list[int]:
    """How often each job's part was polled so far (the part's `polls` counter), in one pipelined round trip."""
    pipe = store.redis.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(store.part_key(job_id, 0), "polls")
    return [int(raw or 0) for raw in pipe.execute()]


def _polls(emulator: EmulatorProcess) -> int:
    calls = emulator.stats()["calls"]
    return sum(v for k, v in calls.items() if k.startswith("GET /v1/batches/"))

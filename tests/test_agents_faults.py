"""Agent runs survive SIGKILL: a worker killed during a tool call or between rounds loses no run, creates no provider
batch twice and stores each final output once; a tool call cut off runs again (at least once) with the same
idempotency key."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from batchline import BatchStatus, agents, worker
from batchline.agents import RunState
from batchline.emulator import Emulator

from .agent_app import PROMPT
from .conftest import RealSetup, WorkerProcess, make_real_setup
from .test_direct import emulator_env
from .waiting import wait_for

pytestmark = pytest.mark.redis


class Fleet:
    def __init__(self, setup: RealSetup, env: dict[str, str], tmp: Path) -> None:
        self.setup, self.env, self.tmp = setup, env, tmp
        self.log = tmp / "worker.log"
        self.worker = self.start()

    def start(self) -> WorkerProcess:
        # -B: the sweep, which sends again what a killed worker held.
        extra = ["-I", "tests.app_tasks", "-B", "-s", str(self.tmp / "beat")]
        return WorkerProcess(self.env, self.log, extra=extra)

    def kill_and_restart(self) -> None:
        self.worker.kill()
        self.worker = self.start()

    @property
    def tool_calls(self) -> list[str]:
        path = Path(self.env["AGENT_TOOL_LOG"])
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def fleet(redis_url: str, emulator: Emulator, tmp_path: Path) -> Iterator[Callable[[float], Fleet]]:
    emulator.configure(response_template="answer for {custom_id}: {tool_results}")
    made: list[Fleet] = []

    def make(tool_seconds: float) -> Fleet:
        setup = make_real_setup(
            redis_url,
            visibility_timeout=6,
            max_poll_interval=1,
            claim_timeout=3,
            sweep_interval=1,
            agent_lease=3,
            allowed_agents="tests.agent_app",
            allowed_callbacks="bltest.record",
        )
        env = {**setup.env, **emulator_env(emulator), "AGENT_TOOL_LOG": str(tmp_path / "tools.log")}
        env["AGENT_TOOL_SECONDS"] = str(tool_seconds)
        env.pop("GOOGLE_API_KEY", None)
        worker.use_app(setup.app)
        made.append(Fleet(setup, env, tmp_path))
        return made[-1]

    yield make
    worker._current = None
    for each in made:
        each.worker.stop()
        each.setup.cleanup()


def start(runs: int) -> str:
    batch = agents.run_batch_sync(
        "tests.agent_app:openai_agent",
        [(f"k{i}", PROMPT) for i in range(runs)],
        deps="tests.agent_app:make_deps",
        max_requests=runs,
        max_wait=5,
        poll_interval=0.2,
        callback="bltest.record",
    )
    return batch.id


def check_every_run_once(fleet: Fleet, emulator: Emulator, job_id: str, runs: int) -> None:
    wait_for(lambda: agents.status_sync(job_id).is_complete, "every run to end", timeout=150, log=fleet.worker)
    final = agents.status_sync(job_id)
    assert final.status == BatchStatus.COMPLETED and final.agent is not None
    assert (final.agent.succeeded, final.agent.failed) == (runs, 0)  # 0 lost runs, each final output counted once
    results = agents.results_sync(job_id)
    assert [r.custom_id for r in results] == [f"k{i}" for i in range(runs)]
    for i, result in enumerate(results):
        assert result.state == RunState.DONE
        assert result.output.endswith(f": lookup(K{i}); forecast(1)")
        assert result.usage is not None and result.usage.requests == 3
    assert emulator.stats()["openai"]["batches_created"] == 3  # no provider batch made twice
    client, prefix = fleet.setup.client, fleet.setup.settings.key_prefix
    wait_for(lambda: int(client.get(f"{prefix}bltest:effect_count:{job_id}") or 0) == runs, "every callback")
    assert client.hlen(f"{prefix}bltest:effects:{job_id}") == runs


def test_a_worker_killed_during_tool_calls_loses_no_run(fleet: Callable[[float], Fleet], emulator: Emulator) -> None:
    f = fleet(1.5)
    job_id = start(6)
    wait_for(lambda: len(f.tool_calls) >= 2, "tool calls to be running", timeout=90, log=f.worker)
    f.kill_and_restart()
    check_every_run_once(f, emulator, job_id, 6)
    counts = Counter(f.tool_calls)
    assert len(counts) == 6  # each run's lookup call, by its idempotency key
    assert max(counts.values()) >= 2  # a call cut off ran again, at least once, under the same key
    assert all(key.startswith(f"{job_id}:k") for key in counts)


def test_a_worker_killed_between_rounds_again_and_again_loses_no_run(
    fleet: Callable[[float], Fleet], emulator: Emulator
) -> None:
    f = fleet(0.0)
    job_id = start(12)
    f.kill_and_restart()  # its first steps were queued or running
    for created in (1, 2):  # as the first round's batch is made, then the second's
        wait_for(lambda n=created: emulator.stats()["openai"]["batches_created"] >= n, "a round's batch", log=f.worker)
        f.kill_and_restart()
    check_every_run_once(f, emulator, job_id, 12)

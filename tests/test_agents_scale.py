"""1,000 agent runs with two tool rounds each, on a real worker with two slots: every output right, one provider
batch per round (three in all, not 3,000), and all 1,000 runs in flight at once while the worker holds none."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from batchline import BatchStatus, agents, worker
from batchline.emulator import Emulator

from .agent_app import PROMPT
from .conftest import WorkerProcess, make_real_setup
from .test_direct import emulator_env

pytestmark = pytest.mark.redis

RUNS = 1000


def test_a_thousand_runs_take_three_batches_and_hold_no_worker_while_waiting(
    redis_url: str, emulator: Emulator, tmp_path: Path
) -> None:
    emulator.configure(response_template="answer for {custom_id}: {tool_results}")
    setup = make_real_setup(redis_url, allowed_agents="tests.agent_app")
    env = {**setup.env, **emulator_env(emulator)}
    process = WorkerProcess(env, tmp_path / "worker.log", concurrency=2)
    worker.use_app(setup.app)
    try:
        batch = agents.run_batch_sync(
            "tests.agent_app:openai_agent",
            [(f"run-{i}", PROMPT) for i in range(RUNS)],
            deps="tests.agent_app:make_deps",
            max_requests=RUNS,
            max_wait=60,
            poll_interval=0.5,
        )
        most_waiting = 0
        deadline = time.monotonic() + 600
        while not (status := agents.status_sync(batch.id)).is_complete and time.monotonic() < deadline:
            assert status.agent is not None
            most_waiting = max(most_waiting, status.agent.waiting)
            time.sleep(0.2)
        assert status.status == BatchStatus.COMPLETED, status
        assert status.agent is not None and status.agent.succeeded == RUNS
        assert status.agent.model_requests == 3 * RUNS and status.agent.tool_calls == 2 * RUNS
        # Two slots, yet every run waited on its batch at the same time: a waiting run holds no worker.
        assert most_waiting == RUNS
        assert emulator.stats()["openai"]["batches_created"] == 3  # one batch per round
        results = agents.results_sync(batch.id)
        assert len(results) == RUNS
        assert all(r.output.endswith(f": lookup(RUN-{i}); forecast(1)") for i, r in enumerate(results))
    finally:
        worker._current = None
        process.stop()
        setup.cleanup()

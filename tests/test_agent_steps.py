"""The agent steps one at a time, on the real Redis with no worker: each crash window between two atomic steps
leaves a state the next step or the sweep finishes, once."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from batchline.agents import pools
from batchline.agents.records import AgentJob, Request, RunState, ticket_of
from batchline.agents.store import AgentStore
from batchline.agents.usage import Added
from batchline.runtime import Runtime, runtime_for

from .conftest import RealSetup, make_real_setup

pytestmark = pytest.mark.redis


class Outbox:
    def __init__(self) -> None:
        self.stepped: list[tuple[str, int]] = []
        self.submits: list[str] = []
        self.flushes: list[tuple[str, float]] = []

    def steps(self, runs: Sequence[tuple[str, int]]) -> None:
        self.stepped.extend(runs)

    def flush(self, pool: str, countdown: float) -> None:
        self.flushes.append((pool, countdown))

    def submit(self, job_id: str) -> None:
        self.submits.append(job_id)

    def callback(self, task: str, job_id: str, custom_ids: list[str]) -> None:
        pass

    def complete(self, spec: str, summary: dict[str, Any]) -> None:
        pass


@pytest.fixture
def setup(redis_url: str) -> Iterator[RealSetup]:
    made = make_real_setup(redis_url, claim_timeout=1, agent_lease=1)
    yield made
    made.cleanup()


def runtime(setup: RealSetup) -> Runtime:
    return runtime_for(setup.app)


def a_job(agents: AgentStore, runs: int = 2) -> str:
    job = AgentJob(agent="tests.agent_app:openai_agent", total=runs, created_at=time.time())
    return agents.create_job(job, [(f"r{i}", "hi", b"") for i in range(runs)])


POOL = "openai:gpt-4o-mini"


def save_round(agents: AgentStore, job_id: str, index: int, step: int = 0) -> tuple[bool, int, bool]:
    """The end of a round that made run `index`'s request `step + 1`: its history saved, its request pooled."""
    job = agents.job(job_id)
    assert job is not None
    request = Request(ticket_of(job_id, index, step), POOL, b'{"model":"gpt-4o-mini"}', POOL, "", "")
    return agents.wait(job, job_id, index, step, request, (b"[]", b""), Added())


def test_a_round_saved_twice_pools_its_request_once(setup: RealSetup) -> None:
    agents = AgentStore(runtime(setup).store)
    job_id = a_job(agents)
    assert save_round(agents, job_id, 0) == (True, 1, True)  # the first request of a pool sets its deadline
    assert save_round(agents, job_id, 0) == (False, 0, False)  # another try of the same round: nothing more
    assert save_round(agents, job_id, 1) == (True, 2, False)
    run = agents.run(job_id, 0)
    assert run is not None and (run.state, run.step) == (RunState.WAITING, 1)
    job = agents.job(job_id)
    assert job is not None and (job.new, job.waiting, job.steps, job.model_requests) == (0, 2, {1: 2}, 2)


def test_a_run_ended_before_its_round_was_saved_pools_nothing(setup: RealSetup) -> None:
    agents = AgentStore(runtime(setup).store)
    job_id = a_job(agents, runs=1)
    agents.finish(job_id, 0, -1, RunState.CANCELLED, {"error": "cancelled"}, Added())  # a cancel, mid-round
    assert save_round(agents, job_id, 0) == (False, 0, False)
    assert agents.pool_deadline(POOL) is None and agents.ticket(ticket_of(job_id, 0, 0)) is None


def test_a_flush_cut_off_before_its_job_was_written_is_written_once_by_the_sweep(setup: RealSetup) -> None:
    rt = runtime(setup)
    agents, out = AgentStore(rt.store), Outbox()
    job_id = a_job(agents)
    for index in range(2):
        save_round(agents, job_id, index)
    batch_job, tickets = agents.take(POOL)  # ... and the worker dies here
    agents.claim_flush(batch_job, rt.settings.claim_timeout)
    assert rt.store.job(batch_job) is None
    assert pools.sweep(rt, out) == 0  # within the claim: the flushing worker may still be writing it
    time.sleep(1.2)
    pools.sweep(rt, out)
    written = rt.store.load_job(batch_job)
    assert (written.total, list(rt.store.request_ids(batch_job))) == (2, tickets)
    assert out.submits == [batch_job]
    assert agents.flushing(time.time() + 1) == []  # the flush is recorded as done
    time.sleep(1.2)
    pools.sweep(rt, out)
    assert out.submits == [batch_job]  # never a second job for the same requests
    rt.store.delete_job(batch_job, 1)


def test_a_finished_batch_wakes_only_runs_that_wait_on_it(setup: RealSetup) -> None:
    rt = runtime(setup)
    agents = AgentStore(rt.store)
    job_id = a_job(agents)
    mine, other = ticket_of(job_id, 0, 0), ticket_of(job_id, 1, 0)
    save_round(agents, job_id, 0)
    batch_job, _ = agents.take(POOL)
    save_round(agents, job_id, 1)  # still in the pool: no batch holds it
    # A job whose on_complete names agent_resume (by mistake or malice) with the ids of other runs wakes nothing.
    assert agents.resumed("batch_someone_else", [mine, other]) == []
    assert agents.resumed(batch_job, [mine, other]) == [(job_id, 0)]


def test_a_run_taken_by_one_worker_is_not_taken_by_another(setup: RealSetup) -> None:
    import asyncio

    from batchline.agents.stepping import advance

    rt = runtime(setup)
    agents = AgentStore(rt.store)
    job_id = a_job(agents, runs=1)
    token = agents.lock(job_id, 0, 5)
    assert token is not None
    assert asyncio.run(advance(rt, Outbox(), job_id, 0)) == "busy"
    agents.unlock(job_id, 0, token)


def test_a_woken_run_whose_result_is_in_stays_due(setup: RealSetup) -> None:
    rt = runtime(setup)
    agents = AgentStore(rt.store)
    job_id = a_job(agents, runs=1)
    ticket = ticket_of(job_id, 0, 0)
    save_round(agents, job_id, 0)
    agents.forget_due_unless_answered(job_id, 0, ticket)
    assert agents.due(time.time() + 10, 10) == []  # not answered: a spurious wake-up is forgotten
    batch_job, _ = agents.take(POOL)
    agents.resumed(batch_job, [ticket])
    agents.forget_due_unless_answered(job_id, 0, ticket)
    assert agents.due(time.time() + 10, 10) == [(job_id, 0)]  # answered: kept for the sweep, whatever happens

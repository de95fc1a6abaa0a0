"""A job's budget (`max_cost`) while it runs: once the cost of its stored results passes it, the parts not created
yet are held back, the running ones cancelled, and every request gets a result; and the estimate checked against
what the emulator bills."""

from __future__ import annotations

from decimal import Decimal

import pytest

from batchline import pipeline
from batchline.pipeline import Next, budget
from batchline.providers.test import TestProvider
from batchline.records import JobRecord, PartState
from batchline.results import read_results
from batchline.types import BatchStatus

from .test_pipeline_steps import creates, end_at_provider, make_runtime, new_job, part_records, set_job_fields


def dollar_per_success(job: JobRecord) -> Decimal:
    """A price for the `test` model, which has none: a dollar for each succeeded request."""
    return Decimal(job.succeeded)


def test_passing_the_budget_holds_back_new_parts_and_cancels_running_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TestProvider, "max_requests", 2)  # five requests: three parts
    monkeypatch.setattr(budget, "job_cost", dollar_per_success)
    runtime = make_runtime()
    job_id = new_job(runtime, count=5)
    set_job_fields(runtime, job_id, max_cost=Decimal("1.5"))
    submitting = pipeline.submit(runtime, job_id)
    assert [next(submitting), next(submitting)] == [Next("poll", 0), Next("poll", 1)]  # parts 0 and 1 are running

    end_at_provider(runtime, job_id, 0)
    assert pipeline.poll(runtime, job_id, 0) == Next("fetch", 0)
    assert pipeline.fetch(runtime, job_id, 0) == [Next("cancel")]  # two successes: $2 passed the budget of $1.50
    job = runtime.store.load_job(job_id)
    assert job.state is BatchStatus.CANCELLING
    assert job.cancel_reason == "its cost so far, $2.00, passed its max_cost of $1.50"
    # A fetch that runs again stores nothing twice; it sends the submit again (the first fetch's steps may be lost),
    # which ends part 2 uncreated rather than creating it.
    assert pipeline.fetch(runtime, job_id, 0) == [Next("submit")]

    assert list(submitting) == [Next("fetch", 2)]  # the submit goes on: part 2 is held back, never created
    assert creates(runtime, job_id, 2) == 0
    assert pipeline.cancel(runtime, job_id) == [Next("fetch", 1)]  # the running part is cancelled at the provider
    assert pipeline.fetch(runtime, job_id, 1) == []
    assert pipeline.fetch(runtime, job_id, 2) == [Next("deliver")]

    job = runtime.store.load_job(job_id)
    assert (job.state, job.succeeded, job.failed) == (BatchStatus.CANCELLED, 2, 3)
    assert [part.provider_state for part in part_records(runtime, job_id)] == ["completed", "cancelled", "cancelled"]
    results = read_results(runtime, job_id)
    assert [r.custom_id for r in results] == [f"r{i}" for i in range(5)]  # every request has its result
    assert [r.is_successful for r in results] == [True, True, False, False, False]
    for result in results[2:]:
        assert result.error is not None and result.error.code == "canceled"
        assert result.error.message.endswith(f"the job was cancelled as {job.cancel_reason}.")


def test_a_job_within_budget_or_with_nothing_left_to_stop_ends_as_it_would(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TestProvider, "max_requests", 2)
    monkeypatch.setattr(budget, "job_cost", dollar_per_success)
    runtime = make_runtime()
    within = new_job(runtime, count=4)
    set_job_fields(runtime, within, max_cost=Decimal(10))
    over_at_the_end = new_job(runtime, count=4)
    set_job_fields(runtime, over_at_the_end, max_cost=Decimal("2.5"))
    for job_id in (within, over_at_the_end):
        assert list(pipeline.submit(runtime, job_id)) == [Next("poll", 0), Next("poll", 1)]
        end_at_provider(runtime, job_id, 0)
        end_at_provider(runtime, job_id, 1)
        for n in (0, 1):
            assert pipeline.poll(runtime, job_id, n) == Next("fetch", n)
        assert pipeline.fetch(runtime, job_id, 0) == []  # $2: within both budgets
        # $4 passes the second budget, but both parts have run: nothing is left to stop, the job completes.
        assert pipeline.fetch(runtime, job_id, 1) == [Next("deliver")]
        job = runtime.store.load_job(job_id)
        assert (job.state, job.succeeded, job.cancel_reason) == (BatchStatus.COMPLETED, 4, None)
        assert all(part.state is PartState.STORED for part in part_records(runtime, job_id))

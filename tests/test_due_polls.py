"""Waiting polls as members of one due set, polled in groups (`due_polls.py`, `pipeline/grouped.py`, the
`batchline.poll_due` task): the set's claims, leases and tick on their own, a group's parts kept from each other's
trouble, and many jobs waiting on a real worker that holds one message for all of them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis

from batchline import pipeline
from batchline.due_polls import LEASE, TICK_SLACK, DuePolls
from batchline.errors import TransientProviderError
from batchline.pipeline import Next
from batchline.records import PartState
from batchline.runtime import Runtime, runtime_for

from .conftest import WorkerProcess, make_real_setup
from .test_pipeline_steps import end_at_provider, make_runtime, new_job, submitted
from .test_real_worker import run_python
from .waiting import wait_for


@pytest.fixture
def due() -> DuePolls:
    return DuePolls(fakeredis.FakeRedis(), "dp:")


def test_parts_are_claimed_when_due_longest_due_first_and_leased(due: DuePolls) -> None:
    now = time.time()
    due.schedule("a", 0, now - 5)
    due.schedule("b", 1, now - 10)
    due.schedule("c", 0, now + 60)  # not due yet
    claim = due.claim(limit=10)
    assert claim.parts == [("b", 1), ("a", 0)]
    assert due.claim(limit=10).parts == []  # leased: nobody else takes them meanwhile
    leased = due.when("a", 0)
    assert leased is not None and now + LEASE - 1 < leased <= time.time() + LEASE
    assert due.earliest() == leased  # the soonest of the three: the leases end before c is due
    assert due.claim(limit=10, lease=-1).parts == [] and due.when("c", 0) == pytest.approx(now + 60)


def test_a_lease_that_runs_out_makes_the_part_due_again_and_renewing_keeps_it(due: DuePolls) -> None:
    due.schedule("a", 0, time.time() - 1)
    due.schedule("b", 0, time.time() - 1)
    claim = due.claim(limit=10, lease=0.2)
    assert len(claim.parts) == 2
    due.renew(claim, [("a", 0), ("b", 0)])
    time.sleep(0.3)
    assert due.claim(limit=10).parts == []  # renewed: still being polled
    due.release(claim, "b", 0)
    assert due.when("b", 0) is None  # it ended: it needs no more polls


def test_a_part_scheduled_anew_during_its_poll_keeps_its_time(due: DuePolls) -> None:
    """A submit that creates a part (or a poll from the sweep) may set its next time while a group holds it: the
    group's release and renewal leave that time alone, so the part is never dropped while it still needs polls."""
    due.schedule("a", 0, time.time() - 1)
    due.schedule("b", 0, time.time() - 1)
    claim = due.claim(limit=10)
    soon = time.time() + 1
    due.schedule("a", 0, soon)
    due.schedule("b", 0, soon)
    due.release(claim, "a", 0)
    due.renew(claim, [("b", 0)])
    assert due.when("a", 0) == pytest.approx(soon) and due.when("b", 0) == pytest.approx(soon)


def test_one_tick_serves_every_schedule_due_no_earlier_than_it(due: DuePolls) -> None:
    now = time.time()
    first = due.want_tick(now + 10)
    assert first is not None
    assert due.want_tick(now + 10 + TICK_SLACK / 2) is None  # the noted tick serves it
    assert due.want_tick(now + 30) is None
    earlier = due.want_tick(now + 2)  # a part due sooner: an earlier tick is sent
    assert earlier is not None
    due.tick_ran(first)  # the replaced tick runs later: it does not forget the earlier one's note
    assert due.want_tick(now + 5) is None
    due.tick_ran(earlier)
    assert due.want_tick(now + 5) is not None  # no tick waits any more


def _group(runtime: Runtime, parts: list[tuple[str, int]]) -> tuple[dict[str, str], list[tuple[str, Next]]]:
    sent: list[tuple[str, Next]] = []
    for job_id, n in parts:
        runtime.due.schedule(job_id, n, time.time() - 1)
    claim = runtime.due.claim()
    assert sorted(claim.parts) == sorted(parts)
    outcomes = pipeline.poll_group(runtime, claim, lambda job_id, nxt: sent.append((job_id, nxt)), lambda: None)
    return outcomes, sent


def test_a_group_sets_each_part_what_comes_next_and_keeps_their_troubles_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = make_runtime()
    waiting, ended, busy, gone = (new_job(runtime, 2) for _ in range(4))
    for job_id in (waiting, ended, busy, gone):
        submitted(runtime, job_id)
    end_at_provider(runtime, ended)
    runtime.store.delete_job(gone, 1)
    provider = runtime.provider("test")
    status = provider.status
    busy_batch = runtime.store.part(busy, 0).provider_id

    def status_busy_for_one(batch_id: str) -> Any:
        if batch_id == busy_batch:
            raise TransientProviderError("429 from the provider")
        return status(batch_id)

    monkeypatch.setattr(provider, "status", status_busy_for_one)
    parts = [(waiting, 0), (ended, 0), (busy, 0), (gone, 0)]
    before = time.time()
    outcomes, sent = _group(runtime, parts)

    assert outcomes == {f"{waiting}:0": "waiting", f"{ended}:0": "fetch", f"{busy}:0": "busy", f"{gone}:0": "gone"}
    assert sent == [(ended, Next("fetch", 0))]
    due = runtime.due
    assert due.when(ended, 0) is None and due.when(gone, 0) is None  # they need no more polls
    again = due.when(waiting, 0)
    assert again is not None and before < again <= time.time() + 1.0  # the first interval is capped at 1 s
    backoff = due.when(busy, 0)
    assert backoff is not None and before + 0.5 < backoff <= time.time() + 1.0  # 1 s after its first busy answer
    assert runtime.store.part(waiting, 0).polls == 1 and runtime.store.part(ended, 0).state == PartState.ENDED

    # Busy again: the back-off doubles; a readable answer then clears the count.
    runtime.due.schedule(busy, 0, time.time() - 1)
    pipeline.poll_group(runtime, runtime.due.claim(), lambda *_: None, lambda: None)
    second = due.when(busy, 0)
    assert second is not None and second > time.time() + 1.5
    monkeypatch.setattr(provider, "status", status)
    outcomes, _ = _group(runtime, [(busy, 0)])
    assert outcomes == {f"{busy}:0": "waiting"} and runtime.store.part(busy, 0).polls >= 1


def test_an_outage_in_a_group_is_raised_after_the_others_and_leaves_its_part_leased(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = make_runtime()
    fine, cut = new_job(runtime, 1), new_job(runtime, 1)
    submitted(runtime, fine)
    submitted(runtime, cut)
    poll = pipeline.grouped.poll

    def cut_off(rt: Runtime, job_id: str, n: int) -> Next | None:
        if job_id == cut:
            raise redis.ConnectionError("Redis went away")
        return poll(rt, job_id, n)

    monkeypatch.setattr(pipeline.grouped, "poll", cut_off)
    with pytest.raises(redis.ConnectionError):
        _group(runtime, [(fine, 0), (cut, 0)])
    assert runtime.store.part(fine, 0).polls == 1  # the other part was polled and scheduled
    leased = runtime.due.when(cut, 0)
    assert leased is not None and leased > time.time() + LEASE / 2  # it comes due again when its lease ends


JOBS = 150


@pytest.mark.redis
def test_many_jobs_wait_as_members_of_the_due_set_not_as_messages_held_by_the_worker(
    redis_url: str, tmp_path: Path
) -> None:
    """150 jobs whose provider batches take 8 s, on a real worker with 2 slots: while they wait the worker holds at
    most the one tick message, every job is polled more than once, and each completes and leaves the set."""
    setup = make_real_setup(redis_url, test_delay=8.0)
    process = WorkerProcess(setup.env, tmp_path / "worker.log")
    try:
        created = run_python(
            "from pydantic_ai import ModelRequest\n"
            "from batchline import batch_create_sync\n"
            f"for n in range({JOBS}):\n"
            "    b = batch_create_sync('test', [(f'q{n}', [ModelRequest.user_text_prompt('x')])],\n"
            "                          poll_interval=0.5, submit_wait=0)\n"
            "    print(b.id)",
            setup.env,
        ).split()
        assert len(created) == JOBS
        runtime = runtime_for(setup.app)
        store = runtime.store
        due_key = runtime.due.key

        def all_waiting() -> bool:
            return sum(store.part(job_id, 0).polls >= 2 for job_id in created) == JOBS

        wait_for(all_waiting, "every job polled twice", timeout=60, log=process)
        assert store.redis.zcard(due_key) == JOBS  # one member each
        inspect = setup.app.control.inspect(timeout=2.0)
        held = sum(len(v) for v in (inspect.scheduled() or {}).values())
        held += sum(len(v) for v in (inspect.reserved() or {}).values())
        assert held <= 2  # the tick (and at most one group about to start), not one message per job

        final = run_python(
            "from batchline import batch_wait_sync\n"
            f"for job_id in {created!r}:\n"
            "    print(batch_wait_sync(job_id).status.name)",
            setup.env,
        ).split()
        assert final == ["COMPLETED"] * JOBS
        assert store.redis.zcard(due_key) == 0  # every part left the set when it ended
        log = process.output()
        assert "Task batchline.poll[" not in log and log.count("Task batchline.poll_due[") >= 2
        assert all(store.result_count(job_id) == 1 for job_id in created)
    finally:
        process.stop()
        setup.cleanup()


def test_the_first_poll_is_asked_for_at_once_and_a_new_job_does_not_wait_for_a_later_tick() -> None:
    runtime = make_runtime()
    due = runtime.due
    assert due.want_tick(time.time() + 600) is not None  # a tick waits for a part due in ten minutes
    job_id = new_job(runtime, 1)
    [first] = submitted(runtime, job_id)
    assert first == Next("poll", 0)  # submit asks for a poll now: the task layer schedules it in the due set
    assert due.want_tick(time.time()) is not None  # an earlier tick than the noted one is sent


@pytest.mark.parametrize(
    ("header", "value", "expected"),
    [
        ("retry-after", "inf", None),
        ("retry-after", "nan", None),
        ("retry-after", "-5", None),
        ("retry-after", "1e12", 3600.0),
        ("retry-after", "not a date", None),
        ("retry-after-ms", "1500", 1.5),
        ("retry-after", "7", 7.0),
    ],
)
def test_a_hostile_retry_after_cannot_park_a_part_or_break_the_tick(header: str, value: str, expected: Any) -> None:
    import httpx2

    from batchline.providers.http import retry_after

    assert retry_after(httpx2.Response(429, headers={header: value})) == expected


def test_a_busy_poll_waits_at_least_a_second_and_at_most_the_poll_cap() -> None:
    runtime = make_runtime(max_poll_interval=120)
    job_id = new_job(runtime, 1)
    submitted(runtime, job_id)
    assert pipeline.backoff(runtime, job_id, 0, TransientProviderError("busy", 0.001)) == 1.0
    assert pipeline.backoff(runtime, job_id, 0, TransientProviderError("busy", 10_000.0)) == 120.0
    assert pipeline.backoff(runtime, job_id, 0, TransientProviderError("busy")) == 1.0  # first try in a row
    assert pipeline.backoff(runtime, job_id, 0, TransientProviderError("busy")) == 2.0
    with pytest.raises(ValueError, match="finite"):
        runtime.due.want_tick(float("inf"))


def test_a_fault_of_one_part_leaves_it_leased_and_the_group_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = make_runtime()
    fine, broken = new_job(runtime, 1), new_job(runtime, 1)
    submitted(runtime, fine)
    submitted(runtime, broken)

    def send(job_id: str, nxt: Next) -> None:
        raise TypeError("a message that cannot be encoded")

    end_at_provider(runtime, broken)  # its poll sends a fetch, whose send fails
    for job_id in (fine, broken):
        runtime.due.schedule(job_id, 0, time.time() - 1)
    outcomes = pipeline.poll_group(runtime, runtime.due.claim(), send, lambda: None)
    assert outcomes == {f"{fine}:0": "waiting", f"{broken}:0": "error"}
    leased = runtime.due.when(broken, 0)
    assert leased is not None and leased > time.time() + LEASE / 2  # polled again when the lease ends

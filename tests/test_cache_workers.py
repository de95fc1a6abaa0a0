"""The response cache through real `celery worker` processes on real Redis, against the emulator's OpenAI Batch API:
the emulator's own record of what it received says what was sent, and how often."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from pydantic_ai import ModelRequest

from batchline import Batch, BatchStatus, batch_create_sync, batch_results_sync, batch_status_sync
from batchline.emulator import BatchFault, Emulator
from batchline.types import BatchResult

from .conftest import RealSetup
from .test_cli_jobs import batchline, write_jsonl
from .test_faults_openai import MODEL, Workers, openai_workers  # noqa: F401 (a fixture)
from .waiting import wait_for

pytestmark = pytest.mark.redis


def asks(job: str, topics: list[int]) -> list[tuple[str, list[ModelRequest]]]:
    """A request per topic; its custom_id names the job and the topic (`a-7`), its prompt only the topic."""
    return [(f"{job}-{t}", [ModelRequest.user_text_prompt(f"Tell me about topic {t}.")]) for t in topics]


def topic(custom_id: str) -> int:
    return int(custom_id.rpartition("-")[2])


def sent_topics(emulator: Emulator) -> list[int]:
    """The topic of every request the emulator received, as often as it received it."""
    return sorted(topic(cid) for cid in emulator.received()["openai"])


def complete(job_id: str, timeout: float = 90) -> Batch:
    wait_for(lambda: batch_status_sync(job_id).is_complete, f"job {job_id} to end", timeout=timeout)
    return batch_status_sync(job_id)


def by_id(job_id: str) -> dict[str, BatchResult]:
    return {r.custom_id: r for r in batch_results_sync(job_id)}


def answered_as(results: dict[str, BatchResult], sent: list[str]) -> None:
    """Each result is the answer of the request that was sent for its topic (the emulator names it in its text)."""
    sender = {topic(cid): cid for cid in sent}
    for cid, result in results.items():
        assert result.response is not None, (cid, result.error)
        assert result.response.text == f"Mock response for {sender[topic(cid)]}", cid
        assert result.cached == (cid != sender[topic(cid)]), cid


def test_a_cached_answer_sends_nothing_and_reads_as_the_new_requests(
    openai_workers: tuple[RealSetup, Workers],  # noqa: F811
    emulator: Emulator,
    tmp_path: Path,
) -> None:
    setup, _ = openai_workers
    first = complete(batch_create_sync(MODEL, asks("a", list(range(6))), poll_interval=0.3, cache=True).id)
    assert first.status is BatchStatus.COMPLETED and first.cached_count == 0
    assert first.cost is not None and first.cost > 0
    before = emulator.stats()["openai"]
    assert before["requests_received"] == 6

    # The same questions from the command line, in another order and under other ids, one of them twice.
    rows = [{"custom_id": f"cli-{t}", "prompt": f"Tell me about topic {t}."} for t in (5, 3, 1, 0, 2, 4)]
    rows.append({"custom_id": "cli-again-3", "prompt": "Tell me about topic 3."})
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    submitted = batchline("submit", str(path), "--model", MODEL, "--cache", env=setup.env)
    assert submitted.returncode == 0, submitted.stderr
    second = complete(submitted.stdout.strip())
    assert emulator.stats()["openai"] == before  # no batch, no file, no request more
    assert second.status is BatchStatus.COMPLETED
    assert (second.completed_count, second.failed_count, second.cached_count) == (7, 0, 7)
    assert second.usage.input_tokens == second.usage.output_tokens == 0 and second.cost == Decimal(0)  # nothing paid
    answered_as(by_id(second.id), [f"a-{t}" for t in range(6)])

    status = batchline("status", second.id, env=setup.env)
    assert status.returncode == 0, status.stderr
    caption = " ".join(status.stdout.split())  # the table's caption wraps
    assert "7 succeeded, 0 failed, 0 not run (cancelled or expired) of 7" in caption
    assert "7 answered from the cache or an identical request (not sent)" in caption

    # The provider's own lines name the new custom_ids, with the answers first given to job a.
    out = tmp_path / "out.jsonl"
    exported = batchline("results", second.id, "--format", "provider", "-o", str(out), env=setup.env)
    assert exported.returncode == 0, exported.stderr
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [line["custom_id"] for line in lines] == [row["custom_id"] for row in rows]
    for line in lines:
        text = line["response"]["body"]["output"][0]["content"][0]["text"]
        assert text == f"Mock response for a-{topic(line['custom_id'])}"


def test_identical_requests_of_a_job_are_sent_once_and_each_gets_the_answer(
    openai_workers: tuple[RealSetup, Workers],  # noqa: F811
    emulator: Emulator,
) -> None:
    topics = [0, 1, 2, 3] * 3
    requests = [
        (f"r{n}-{t}", [ModelRequest.user_text_prompt(f"Tell me about topic {t}.")]) for n, t in enumerate(topics)
    ]
    batch = complete(batch_create_sync(MODEL, requests, poll_interval=0.3, cache=True).id)
    assert emulator.received()["openai"] == ["r0-0", "r1-1", "r2-2", "r3-3"]  # the first of each, once
    assert (batch.completed_count, batch.cached_count) == (12, 8)
    results = by_id(batch.id)
    answered_as(results, ["r0-0", "r1-1", "r2-2", "r3-3"])
    paid = [results[cid].response for cid in ("r0-0", "r1-1", "r2-2", "r3-3")]
    assert batch.usage.input_tokens == sum(r.usage.input_tokens for r in paid if r is not None) > 0  # paid once


def test_concurrent_jobs_sharing_requests_send_each_once(
    openai_workers: tuple[RealSetup, Workers],  # noqa: F811
    emulator: Emulator,
) -> None:
    emulator.configure(stage_seconds=1.0)  # batches stay in flight while the other job screens its requests
    first = batch_create_sync(MODEL, asks("a", list(range(20))), poll_interval=0.3, cache=True, submit_wait=0)
    second = batch_create_sync(MODEL, asks("b", list(range(10, 30))), poll_interval=0.3, cache=True, submit_wait=0)
    done = complete(first.id), complete(second.id)
    assert [b.status for b in done] == [BatchStatus.COMPLETED] * 2
    assert sent_topics(emulator) == list(range(30))  # each of the 30 questions once, whichever job sent it
    sent = emulator.received()["openai"]
    answered_as(by_id(first.id), sent)
    answered_as(by_id(second.id), sent)
    assert done[0].cached_count + done[1].cached_count == 10


def waiting_for(job_id: str) -> bool:
    return any(p.status == "waiting" for p in batch_status_sync(job_id).provider_batches)


def test_a_job_waiting_for_a_job_that_fails_sends_the_requests_itself(
    openai_workers: tuple[RealSetup, Workers],  # noqa: F811
    emulator: Emulator,
) -> None:
    emulator.configure(stage_seconds=2.0)
    emulator.add_fault(BatchFault(outcome="fail", provider="openai", times=1))  # job a's batch fails validation
    first = batch_create_sync(MODEL, asks("a", [0, 1, 2]), poll_interval=0.3, cache=True)
    second = batch_create_sync(MODEL, asks("b", [1, 2, 3]), poll_interval=0.3, cache=True)
    assert waiting_for(second.id)  # 1 and 2 wait for job a's, 3 went at once
    assert complete(first.id).status is BatchStatus.FAILED
    done = complete(second.id)
    assert (done.status, done.completed_count, done.failed_count) == (BatchStatus.COMPLETED, 3, 0)
    assert sent_topics(emulator) == [0, 1, 1, 2, 2, 3]  # 1 and 2 went again, in job b
    answered_as(by_id(second.id), [cid for cid in emulator.received()["openai"] if cid.startswith("b-")])


def test_a_worker_killed_while_a_job_waits_for_another_loses_nothing(
    openai_workers: tuple[RealSetup, Workers],  # noqa: F811
    emulator: Emulator,
) -> None:
    _, workers = openai_workers
    emulator.configure(stage_seconds=2.0)
    first = batch_create_sync(MODEL, asks("a", list(range(8))), poll_interval=0.3, cache=True)
    second = batch_create_sync(MODEL, asks("b", list(range(4, 12))), poll_interval=0.3, cache=True)
    assert waiting_for(second.id)
    workers.restart()  # killed while job a's batch runs and job b waits on its poll chain
    done = complete(first.id), complete(second.id)
    assert [b.status for b in done] == [BatchStatus.COMPLETED] * 2
    assert sent_topics(emulator) == list(range(12))  # nothing sent twice, nothing lost
    sent = emulator.received()["openai"]
    answered_as(by_id(first.id), sent)
    answered_as(by_id(second.id), sent)
    assert emulator.stats()["openai"]["batches_created"] == 2

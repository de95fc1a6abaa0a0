"""Token usage and cost per job: summed by the store as results arrive, each result once however often a fetch runs,
priced from the totals at batch prices, and shown by `Batch`, the task summary and the CLI."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import fakeredis
import orjson
import pytest
from rich.console import Console

from batchline import batch_create_sync, batch_results_sync, batch_status_sync, pipeline
from batchline.cli_tables import status_table, usage_text
from batchline.costs import cost_of, cost_of_totals, job_cost
from batchline.emulator import Emulator, HttpFault
from batchline.providers.anthropic import wire as anthropic_wire
from batchline.providers.gemini import wire as gemini_wire
from batchline.providers.mistral import wire as mistral_wire
from batchline.providers.openai import wire as openai_wire
from batchline.providers.test import TestProvider
from batchline.records import JobRecord, PartState
from batchline.runtime import Runtime
from batchline.store import Store
from batchline.types import Batch, BatchStatus, BatchUsage

from .test_faults_openai import MODEL, Workers, openai_workers, requests  # noqa: F401 (a fixture)
from .test_pipeline_steps import ended_job, make_runtime
from .waiting import wait_for

READER_FIELDS = ("input_tokens", "output_tokens")
RECORDED = Path(__file__).parent / "fixtures" / "recorded"


def fake_usage(body: bytes) -> tuple[int, int]:
    """A usage reader for the `test` provider's bodies (which report none): a size of the body, and 1."""
    return len(body), 1


def job_usage(runtime: Runtime, job_id: str) -> tuple[int, int]:
    job = runtime.store.load_job(job_id)
    return job.input_tokens, job.output_tokens


def expected_usage(runtime: Runtime, job_id: str, count: int) -> tuple[int, int]:
    """The usage of every stored succeeded result, each counted once."""
    stored = runtime.store.results(job_id, [f"r{i}" for i in range(count)])
    pairs = [fake_usage(r.body) for r in stored if r is not None and r.status == "succeeded"]
    return sum(i for i, _ in pairs), sum(o for _, o in pairs)


# -- the store ---------------------------------------------------------------------------------------------------------
def test_the_store_adds_the_usage_of_new_succeeded_results_only() -> None:
    store = Store(fakeredis.FakeRedis(), "u:")
    store.redis.hset(store.job_key("j"), mapping={"model": "test", "total": 3, "created_at": 0})
    first = [("r0", "succeeded", b"{}"), ("r1", "errored", b'{"error":1}')]
    assert store.add_results("j", first, usage=lambda body: (len(body) * 10, 7)) == 2
    again = [("r0", "succeeded", b'{"a":2}'), *first, ("r2", "succeeded", b"{}!")]
    assert store.add_results("j", again, usage=lambda body: (len(body) * 10, 7), chunk=1) == 1
    job = store.load_job("j")
    assert (job.input_tokens, job.output_tokens) == (20 + 30, 14)  # r0 and r2 once each; the error adds nothing
    assert (job.succeeded, job.failed) == (2, 1)


def test_tokens_an_adapter_read_are_stored_and_its_body_is_not_read_for_them() -> None:
    store = Store(fakeredis.FakeRedis(), "u:")
    store.redis.hset(store.job_key("j"), mapping={"model": "test", "total": 3, "created_at": 0})
    read: list[bytes] = []

    def reader(body: bytes) -> tuple[int, int]:
        read.append(body)
        return 1, 1

    results = [("r0", "succeeded", b"{}", (40, 5)), ("r1", "succeeded", b"{}!", None), ("r2", "errored", b"{}", None)]
    assert store.add_results("j", results, usage=reader) == 3
    assert read == [b"{}!"]  # only the body whose adapter read no tokens
    job = store.load_job("j")
    assert (job.input_tokens, job.output_tokens) == (41, 6)


@pytest.mark.parametrize(
    ("wire", "path"),
    [
        (openai_wire, "openai/batch_output.jsonl"),
        (anthropic_wire, "anthropic/results_succeeded.jsonl"),
        (anthropic_wire, "anthropic/results_succeeded_with_thinking.jsonl"),
        (mistral_wire, "mistral/batch_output_DOCS_SHAPE.jsonl"),
    ],
)
def test_the_tokens_read_with_a_line_are_those_read_from_its_stored_body(wire: ModuleType, path: str) -> None:
    lines = [orjson.loads(line) for line in (RECORDED / path).read_bytes().splitlines() if line.strip()]
    read = [wire.read_result(line) for line in lines]
    assert [r[:3] for r in read] == [wire.result_of(line) for line in lines]
    assert all(tokens is not None and tokens != (0, 0) for _, _, _, tokens in read)  # the recordings report usage
    assert [tokens for _, _, _, tokens in read] == [wire.usage_of(body) for _, _, body, _ in read]


HOSTILE_COUNTS = [True, -5, 1.5, "7", 2**62, None]


@pytest.mark.parametrize("bad", HOSTILE_COUNTS)
def test_a_token_count_that_is_no_count_reads_as_none(bad: object) -> None:
    """A provider that reports `true`, a negative, a fraction or a count near 2**63 (which would overflow the job's
    sums in Redis on every try of the fetch) gets 0 for it; its other, plausible counts stand."""
    bodies = {
        openai_wire: {"usage": {"prompt_tokens": bad, "completion_tokens": 9}},
        mistral_wire: {"usage": {"prompt_tokens": bad, "completion_tokens": 9}},
        anthropic_wire: {"message": {"usage": {"input_tokens": bad, "cache_read_input_tokens": 0, "output_tokens": 9}}},
        gemini_wire: {"usageMetadata": {"promptTokenCount": bad, "candidatesTokenCount": 9}},
    }
    for wire, answer in bodies.items():
        assert wire.usage_of(orjson.dumps(answer)) == (0, 9), wire.__name__
    line = {"custom_id": "a", "response": {"status_code": 200, "body": bodies[openai_wire]}}
    assert openai_wire.read_result(line)[3] == (0, 9)


@pytest.mark.parametrize(("count", "tokens"), [("12", 12), ("\u00b2", 0), ("9" * 5000, 0), ("-3", 0), (" 7", 0)])
def test_an_embeddings_token_count_as_text_is_read_only_when_a_plain_number(count: str, tokens: int) -> None:
    """Gemini sends an int64 as a string. `"²"` and a 5,000-digit number pass `str.isdigit` but not `int()`: they
    raised inside the fetch, which then failed on every try."""
    line = {"key": "a", "response": {"embedding": {"values": [0.1]}, "tokenCount": count}}
    assert gemini_wire.result_line(orjson.dumps(line))[3] == (tokens, 0)
    assert gemini_wire.usage_of(orjson.dumps(line["response"])) == (tokens, 0)


def test_counts_that_would_break_the_jobs_sums_never_reach_redis() -> None:
    """Before, `true` made redis-py refuse the script's arguments, and two counts of 2**62 overflowed the job's sum:
    either failed the fetch on every try."""
    store = Store(fakeredis.FakeRedis(), "u:")
    store.redis.hset(store.job_key("j"), mapping={"model": "openai:gpt-4o-mini", "total": 4, "created_at": 0})
    huge = orjson.dumps({"usage": {"prompt_tokens": 2**62, "completion_tokens": 2**62}})
    truth = orjson.dumps({"usage": {"prompt_tokens": True, "completion_tokens": 3}})
    for batch in ([("a", huge), ("b", huge)], [("c", huge), ("d", truth)]):
        results = [(cid, "succeeded", body) for cid, body in batch]
        assert store.add_results("j", results, usage=openai_wire.usage_of) == 2
    assert job_usage_of(store, "j") == (0, 3)


def job_usage_of(store: Store, job_id: str) -> tuple[int, int]:
    job = store.load_job(job_id)
    return job.input_tokens, job.output_tokens


def test_an_older_job_record_reads_as_no_usage() -> None:
    job = JobRecord.from_hash({"model": "openai:gpt-4o-mini", "total": "2", "created_at": "0", "succeeded": "2"})
    assert (job.input_tokens, job.output_tokens) == (0, 0)
    assert not set(READER_FIELDS) & set(job.to_hash())  # and writes none back until it has some
    assert job_cost(job) == Decimal(0)  # a known model: nothing used yet costs nothing


# -- a fetch killed and run again --------------------------------------------------------------------------------------
class Killed(Exception):
    """The worker died here (its task is redelivered)."""


def test_usage_is_counted_once_across_a_fetch_killed_and_run_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = make_runtime()
    monkeypatch.setattr(pipeline.fetching, "usage_reader", lambda name: fake_usage)
    job_id = ended_job(runtime, count=5)
    original_results, original_add = TestProvider.read_results, Store.add_results

    def dying_results(self: TestProvider, batch: object) -> object:
        for n, result in enumerate(original_results(self, batch)):  # type: ignore[arg-type]
            if n == 3:
                raise Killed
            yield result

    def small_chunks(self: Store, *args: object, **kwargs: object) -> int:
        return original_add(self, *args, **{**kwargs, "chunk": 2})  # type: ignore[arg-type]

    monkeypatch.setattr(TestProvider, "read_results", dying_results)
    monkeypatch.setattr(Store, "add_results", small_chunks)
    with pytest.raises(Killed):
        pipeline.fetch(runtime, job_id, 0)
    assert runtime.store.result_count(job_id) == 2  # the first chunk was stored, and counted, before it died
    assert job_usage(runtime, job_id) == expected_usage(runtime, job_id, 5) != (0, 0)

    monkeypatch.setattr(TestProvider, "read_results", original_results)
    pipeline.fetch(runtime, job_id, 0)  # redelivered: reads every result again
    assert runtime.store.result_count(job_id) == 5
    usage = job_usage(runtime, job_id)
    assert usage == expected_usage(runtime, job_id, 5)
    assert usage[1] == 5

    # Killed after storing everything, before the part was marked stored: the next run stores and counts nothing.
    runtime.store.set_part(job_id, 0, state=PartState.ENDED)
    pipeline.fetch(runtime, job_id, 0)
    assert job_usage(runtime, job_id) == usage
    summary = pipeline.summary(runtime, job_id)
    assert (summary["input_tokens"], summary["output_tokens"], summary["cost"]) == (*usage, None)  # test: no price


# -- pricing -----------------------------------------------------------------------------------------------------------
def test_the_totals_cost_what_their_requests_cost_one_by_one() -> None:
    pairs = Counter({(1000, 500): 3, (10, 20): 1})
    per_request = cost_of("openai", "gpt-4o-mini", pairs)
    totals = cost_of_totals("openai", "gpt-4o-mini", 3010, 1520, 4)
    assert per_request is not None and totals == per_request
    assert cost_of_totals("anthropic", "claude-3-5-haiku-latest", 1000, 100, 2) == cost_of(
        "anthropic", "claude-3-5-haiku-latest", Counter({(500, 50): 2})
    )


def test_a_model_without_a_price_costs_unknown_never_zero() -> None:
    assert cost_of_totals("openai", "no-such-model", 1000, 10, 1) is None
    assert cost_of_totals("openai", "no-such-model", 0, 0, 0) is None
    assert cost_of_totals("test", "test", 1000, 10, 1) is None
    assert job_cost(JobRecord(model="test", total=1, created_at=0, succeeded=1, input_tokens=5)) is None
    assert job_cost(JobRecord(model="nonsense:x", total=1, created_at=0)) is None


# -- the public types and the CLI --------------------------------------------------------------------------------------
def a_batch(**fields: object) -> Batch:
    base = Batch(
        id="batch_x",
        model="openai:gpt-4o-mini",
        status=BatchStatus.COMPLETED,
        created_at=datetime.now(UTC),
        request_count=2,
        completed_count=2,
    )
    return base.model_copy(update=fields)


def test_a_batch_with_usage_and_cost_round_trips_json_and_an_older_one_still_reads() -> None:
    batch = a_batch(usage=BatchUsage(input_tokens=1200, output_tokens=340), cost=Decimal("0.000123"))
    assert Batch.model_validate_json(batch.model_dump_json()) == batch
    older = batch.model_dump(mode="json")
    del older["usage"], older["cost"]
    read = Batch.model_validate(older)
    assert read.usage == BatchUsage() and read.cost is None


def render(batch: Batch) -> str:
    console = Console(width=200, record=True)
    console.print(status_table(batch, stored=[]))
    return console.export_text()


def test_the_status_table_shows_usage_and_cost_or_unknown() -> None:
    priced = a_batch(usage=BatchUsage(input_tokens=1200, output_tokens=340), cost=Decimal("0.000123"))
    assert "1,200 input + 340 output tokens, cost $0.000123" in render(priced)
    assert usage_text(a_batch(cost=Decimal("12.5"))) == "0 input + 0 output tokens, cost $12.50"
    assert "cost unknown" in render(a_batch(model="test", usage=BatchUsage(input_tokens=5)))


# -- through a real worker on the emulator -----------------------------------------------------------------------------
@pytest.mark.redis
def test_a_job_killed_mid_fetch_counts_its_usage_once_and_costs_what_pydantic_ai_says(
    openai_workers: tuple[object, Workers],  # noqa: F811
    emulator: Emulator,
    tmp_path: Path,
) -> None:
    from .test_cli_jobs import batchline

    setup, workers = openai_workers
    emulator.add_fault(HttpFault(kind="slow", delay=3.0, method="GET", path=r"/content$", times=1))
    job = batch_create_sync(MODEL, requests(8), poll_interval=0.3, submit_wait=0)
    wait_for(lambda: emulator.stats()["calls"].get("GET /v1/files/{file_id}/content", 0) >= 1, "the download")
    workers.restart()  # killed during the (slow) download: the fetch runs again on the next worker
    wait_for(lambda: batch_status_sync(job.id).is_complete, "the job to complete", timeout=90)
    batch = batch_status_sync(job.id)
    responses = [r.response for r in batch_results_sync(batch) if r.response is not None]
    assert len(responses) == 8
    assert batch.usage.input_tokens == sum(r.usage.input_tokens for r in responses) > 0
    assert batch.usage.output_tokens == sum(r.usage.output_tokens for r in responses) > 0
    assert batch.cost is not None and batch.cost > 0
    assert batch.cost == sum((r.cost().total_price for r in responses), Decimal(0))  # pydantic-ai's batch price

    status = batchline("status", job.id, env=setup.env)  # type: ignore[attr-defined]
    assert status.returncode == 0, status.stderr
    assert f"{batch.usage.input_tokens:,} input + {batch.usage.output_tokens:,} output tokens" in status.stdout
    assert f"cost ${batch.cost:.6f}" in status.stdout

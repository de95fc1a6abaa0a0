"""OpenTelemetry: one trace per job, from the caller's `batch_create` span through a real worker's steps to the
application's callback, with GenAI attributes, usage and batch-priced cost, and no prompt, result or key in any span.

The caller's spans go to an in-memory exporter; the worker process writes its spans to a file (`tests.otel_worker`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

if not os.environ.get("CI"):  # under CI the extra is installed, and a missing one fails here instead of skipping
    pytest.importorskip("opentelemetry.sdk", reason="tracing needs the otel extra: uv sync --extra otel")

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic_ai import ModelRequest, TextPart

from batchline import batch_create_sync, batch_results_sync, batch_wait_sync, worker
from batchline.costs import cost_of
from batchline.emulator import Emulator
from batchline.telemetry.celery import uninstrument_celery
from batchline.telemetry.usage import Tally

from .conftest import RealSetup, WorkerProcess, make_real_setup
from .openai_anthropic_helpers import FAKE_ANTHROPIC_KEY, FAKE_OPENAI_KEY, provider_env
from .otel_worker import span_json
from .waiting import wait_for

MODEL = "openai:gpt-4o-mini"

_EXPORTER = InMemorySpanExporter()
_READER = InMemoryMetricReader()


@pytest.fixture(scope="module")
def caller_telemetry() -> tuple[InMemorySpanExporter, InMemoryMetricReader]:
    """This process's global providers (set once: OpenTelemetry allows no second), exporting to memory."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
    return _EXPORTER, _READER


@pytest.fixture
def traced_worker(
    redis_url: str, emulator: Emulator, tmp_path: Path, caller_telemetry: Any
) -> Iterator[tuple[RealSetup, Path]]:
    spans = tmp_path / "spans.jsonl"
    setup = make_real_setup(
        redis_url, instrument="true", allowed_callbacks="bltest.record", allowed_agents="tests.agent_app"
    )
    env = {**setup.env, **provider_env(emulator), "BLTEST_SPANS_FILE": str(spans)}
    process = WorkerProcess(env, tmp_path / "worker.log", extra=["-I", "tests.app_tasks,tests.otel_worker"])
    worker.use_app(setup.app)
    _EXPORTER.clear()
    try:
        yield setup, spans
    finally:
        worker._current = None
        process.stop()
        setup.cleanup()
        uninstrument_celery()  # this test process's other tests send their tasks without it


def worker_spans(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def ancestors(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[str]:
    names = []
    while span["parent_id"] in by_id:
        span = by_id[span["parent_id"]]
        names.append(span["name"])
    return names


@pytest.mark.redis
def test_one_trace_per_job_from_the_caller_through_the_worker_to_the_callback(
    traced_worker: tuple[RealSetup, Path], emulator: Emulator
) -> None:
    _, path = traced_worker
    emulator.configure(stage_seconds=0.3)  # the batch runs a little while: the worker polls it
    prompts = [(f"r{i}", [ModelRequest.user_text_prompt(f"secret question number {i}")]) for i in range(6)]
    batch = batch_create_sync(
        MODEL, prompts, poll_interval=0.2, callback="bltest.record", chunk_size=4, instrument=True
    )
    batch_wait_sync(batch)

    def callbacks_traced() -> bool:
        # The deliver span ends after its callbacks were sent (and may be written after their own spans).
        names = [s["name"] for s in worker_spans(path)]
        return names.count("run/bltest.record") == 2 and "batchline.deliver" in names

    caller = [span_json(span) for span in _EXPORTER.get_finished_spans()]
    (create,) = [s for s in caller if s["name"].startswith("batch_create")]
    trace_id = create["trace_id"]

    def job_spans() -> list[dict[str, Any]]:
        return [s for s in caller + worker_spans(path) if s["trace_id"] == trace_id]

    def whole_tree() -> bool:
        # Each worker process writes its spans as they end: a poll span ends just after the fetch it sent, on a
        # thread of another process than the fetch's, so under load it may be written after its children.
        by_id = {s["span_id"]: s for s in job_spans()}
        return all(s["parent_id"] is None or s["parent_id"] in by_id for s in by_id.values())

    wait_for(callbacks_traced, "the callback tasks' and the deliver step's spans", timeout=60)
    wait_for(whole_tree, "every span's parent written", timeout=30)
    spans = job_spans()
    by_id = {s["span_id"]: s for s in spans}
    names = [s["name"] for s in spans]
    for name in ("run/batchline.submit", "batchline.submit", "batchline.poll", "batchline.fetch", "batchline.deliver"):
        assert name in names, f"{name} not in the job's trace: {sorted(set(names))}"

    # One tree: every span leads up to the caller's create span, each step below the one that sent it.
    assert create["parent_id"] is None
    astray = [
        (s["name"], s["parent_id"])
        for s in spans
        if s is not create and "batch_create gpt-4o-mini" not in ancestors(s, by_id)
    ]
    assert not astray, f"spans not under the create span: {astray}"
    (submit,) = [s for s in spans if s["name"] == "batchline.submit"]
    (fetch,) = [s for s in spans if s["name"] == "batchline.fetch"]
    (deliver,) = [s for s in spans if s["name"] == "batchline.deliver"]
    polls = [s for s in spans if s["name"] == "batchline.poll"]
    # Polled by ticks of the due set, which serve every job: each poll span sits right under the job's create span.
    assert polls and all(by_id[p["parent_id"]] is create for p in polls)
    assert "batchline.poll" in ancestors(fetch, by_id)
    assert "batchline.fetch" in ancestors(deliver, by_id)
    callbacks = [s for s in spans if s["name"] == "run/bltest.record"]
    assert len(callbacks) == 2 and all("batchline.deliver" in ancestors(c, by_id) for c in callbacks)

    # Attributes: the GenAI conventions, the job's ids and counts, usage and cost.
    assert create["attributes"] | {"batchline.job_id": batch.id} == create["attributes"]
    for span in (create, submit, fetch, deliver, *polls):
        attributes = span["attributes"]
        assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
        assert attributes["gen_ai.provider.name"] == attributes["gen_ai.system"] == "openai"
        assert attributes["gen_ai.operation.name"] == "chat"
        assert attributes["batchline.job_id"] == batch.id
        assert attributes["batchline.requests"] == 6
    assert fetch["attributes"]["batchline.part"] == 0
    assert fetch["attributes"]["batchline.results_stored"] == 6
    assert (deliver["attributes"]["batchline.succeeded"], deliver["attributes"]["batchline.failed"]) == (6, 0)
    results = batch_results_sync(batch)
    responses = [r.response for r in results if r.response is not None]
    assert len(responses) == 6
    assert fetch["attributes"]["gen_ai.usage.input_tokens"] == sum(r.usage.input_tokens for r in responses) > 0
    assert fetch["attributes"]["gen_ai.usage.output_tokens"] == sum(r.usage.output_tokens for r in responses) > 0
    # The cost is the one pydantic-ai gives the batch responses.
    expected = sum((r.cost().total_price for r in responses), Decimal(0))
    assert fetch["attributes"]["operation.cost"] == pytest.approx(float(expected))

    # No prompt, no result text, no key in any span.
    texts = [p.content for r in responses for p in r.parts if isinstance(p, TextPart)]
    dumped = orjson.dumps(spans, default=str).decode()
    for secret in ["secret question", FAKE_OPENAI_KEY, FAKE_ANTHROPIC_KEY, *texts]:
        assert secret not in dumped

    # Metrics in the caller: the job was counted.
    data = _READER.get_metrics_data()
    names_seen = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "batchline.jobs.created" in names_seen


@pytest.mark.redis
def test_a_job_sent_without_trace_headers_still_has_one_trace(
    traced_worker: tuple[RealSetup, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A caller whose Celery is not instrumented sends the submit with no context: Celery's task span on the worker
    # starts a trace of its own, and batchline's steps join the job's trace (kept in its record), linked to it.
    _, path = traced_worker
    uninstrument_celery()
    monkeypatch.setattr("batchline.telemetry.caller.instrument_celery", lambda **_: None)
    batch = batch_create_sync(
        MODEL, [("r0", [ModelRequest.user_text_prompt("hello")])], poll_interval=0.2, instrument=True
    )
    batch_wait_sync(batch)
    steps = ("batchline.submit", "batchline.fetch", "batchline.deliver")

    def traced() -> list[dict[str, Any]]:
        spans = worker_spans(path)
        return spans if all(any(s["name"] == name for s in spans) for name in steps) else []

    spans = wait_for(traced, "the worker's step spans", timeout=60)
    (create,) = [span_json(s) for s in _EXPORTER.get_finished_spans() if s.name.startswith("batch_create")]
    (run_submit,) = [s for s in spans if s["name"] == "run/batchline.submit"]
    assert run_submit["trace_id"] != create["trace_id"]  # no context came with the message
    for name in steps:
        assert {s["trace_id"] for s in spans if s["name"] == name} == {create["trace_id"]}, name


@pytest.mark.redis
def test_agent_rounds_are_traced_without_their_prompts_or_outputs(
    traced_worker: tuple[RealSetup, Path], emulator: Emulator
) -> None:
    from batchline import agents

    from .agent_app import PROMPT

    _, path = traced_worker
    emulator.configure(response_template="answer for {custom_id}: {tool_results}")
    inputs = [("t0", PROMPT), ("t1", PROMPT)]
    batch = agents.run_batch_sync(
        "tests.agent_app:openai_agent", inputs, deps="tests.agent_app:make_deps", max_requests=2, poll_interval=0.2
    )
    agents.wait_sync(batch.id)

    def traced() -> list[dict[str, Any]]:
        spans = worker_spans(path)
        names = [s["name"] for s in spans]
        done = names.count("batchline.agent_step") >= 6 and names.count("batchline.agent_resume") >= 3
        return spans if done else []

    spans = wait_for(traced, "the agent steps' spans", timeout=60)
    steps = [s for s in spans if s["name"] == "batchline.agent_step"]
    assert {s["attributes"]["batchline.job_id"] for s in steps} == {batch.id}
    assert {s["attributes"]["batchline.run"] for s in steps} == {0, 1}  # the run's index
    assert any(s["name"] == "batchline.agent_flush" for s in spans)
    outputs = [r.output for r in agents.results_sync(batch.id)]
    dumped = orjson.dumps(spans, default=str).decode()
    for secret in [PROMPT, FAKE_OPENAI_KEY, *outputs]:
        assert secret not in dumped


def test_cost_is_batch_priced_and_unknown_models_get_none() -> None:
    pairs = Tally(None).pairs
    pairs[(1000, 500)] += 2
    cost = cost_of("openai", "gpt-4o-mini", pairs)
    assert cost is not None and cost == Decimal("0.075") * 2000 / 10**6 + Decimal("0.3") * 1000 / 10**6
    assert cost_of("openai", "no-such-model", pairs) is None
    assert cost_of("test", "test", pairs) is None


def test_the_worker_steps_record_their_metrics(caller_telemetry: Any) -> None:
    # The steps run by hand on fakeredis (as in test_pipeline_steps), with instrumentation on, in this process.
    from batchline import pipeline

    from .test_pipeline_steps import end_at_provider, make_runtime, new_job

    def points() -> dict[str, float]:
        data = _READER.get_metrics_data()  # None until an instrument has recorded something
        seen: dict[str, float] = {}
        if data is None:
            return seen
        for metric in (m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics):
            for point in metric.data.data_points:
                value = getattr(point, "value", None)
                seen[metric.name] = seen.get(metric.name, 0) + (value if value is not None else point.count)
        return seen

    before = points()
    runtime = make_runtime(instrument=True)
    job_id = new_job(runtime, count=3)
    list(pipeline.submit(runtime, job_id))
    still_running = pipeline.poll(runtime, job_id, 0)
    assert still_running is not None and still_running.step == "poll"
    end_at_provider(runtime, job_id)
    assert pipeline.poll(runtime, job_id, 0) == pipeline.Next("fetch", 0)
    pipeline.fetch(runtime, job_id, 0)
    after = points()

    def grew(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    assert grew("batchline.parts") == 3  # submitted, ended, stored
    assert grew("batchline.results.ingested") == 3
    assert grew("batchline.polls") >= 1
    assert grew("batchline.job.duration") == 1  # one job ended: one measurement

"""Agent runs on the fleet (`batchline.agents`) through a real worker on the real Redis, against the emulator over
HTTP: each round of model requests is one provider batch per model, tools run on the worker, and the runs end as
pydantic-ai would end them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from celery import chain, signature
from pydantic_ai.messages import ModelRequest, ModelResponse, ToolCallPart, ToolReturnPart
from pydantic_ai.usage import UsageLimits

from batchline import BatchInputError, BatchStatus, agents, batch_cancel_sync, batch_status_sync, worker
from batchline.agents import RunState
from batchline.emulator import Emulator
from batchline.errors import CallbackNotAllowed

from .agent_app import PROMPT, Forecast
from .conftest import ROOT, RealSetup, WorkerProcess, make_real_setup
from .test_direct import emulator_env
from .waiting import wait_for

pytestmark = pytest.mark.redis

MODELS = {"openai": "openai_agent", "anthropic": "anthropic_agent", "gemini": "google_agent"}


@pytest.fixture(scope="module")
def fleet_worker(fleet: tuple[RealSetup, WorkerProcess]) -> WorkerProcess:
    return fleet[1]


@pytest.fixture(scope="module")
def fleet(
    redis_url: str, emulator_server: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RealSetup, WorkerProcess]]:
    setup = make_real_setup(
        redis_url, allowed_agents="tests.agent_app", allowed_callbacks="bltest.record,bltest.summarise,bltest.notify"
    )
    setup.env.update(emulator_env(emulator_server))
    setup.env.pop("GOOGLE_API_KEY", None)
    log = tmp_path_factory.mktemp("agents") / "worker.log"
    process = WorkerProcess(setup.env, log, extra=["-I", "tests.app_tasks"])
    try:
        yield setup, process
    finally:
        process.stop()
        setup.cleanup()


@pytest.fixture
def on_fleet(fleet: tuple[RealSetup, WorkerProcess], emulator: Emulator) -> Iterator[RealSetup]:
    emulator.configure(response_template="answer for {custom_id}: {tool_results}")
    setup = fleet[0]
    worker.use_app(setup.app)
    try:
        yield setup
    finally:
        worker._current = None


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_runs_with_two_tool_rounds_take_three_batches_not_one_per_run(
    provider: str, on_fleet: RealSetup, emulator: Emulator, fleet_worker: WorkerProcess
) -> None:
    runs = 30
    notify = chain(signature("bltest.summarise"), signature("bltest.notify"))
    batch = agents.run_batch_sync(
        f"tests.agent_app:{MODELS[provider]}",
        [(f"run-{i}", PROMPT) for i in range(runs)],
        deps="tests.agent_app:make_deps",
        max_requests=runs,
        max_wait=10,
        poll_interval=0.2,
        callback="bltest.record",
        on_complete=notify,
    )
    assert batch.id.startswith("agent_") and batch.request_count == runs
    final = agents.wait_sync(batch.id)
    assert final.status == BatchStatus.COMPLETED
    progress = final.agent
    assert progress is not None
    assert (progress.succeeded, progress.failed, progress.model_requests, progress.tool_calls) == (runs, 0, 90, 60)
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0

    results = agents.results_sync(batch.id)
    assert [r.custom_id for r in results] == [f"run-{i}" for i in range(runs)]
    for i, result in enumerate(results):
        assert result.state == RunState.DONE and result.error is None
        assert result.output.endswith(f": lookup(RUN-{i}); forecast(1)")  # each run's own deps reached its tools
        assert result.usage is not None and (result.usage.requests, result.usage.tool_calls) == (3, 2)
        assert result.messages is not None
        calls = [
            p.tool_name
            for m in result.messages
            if isinstance(m, ModelResponse)
            for p in m.parts
            if isinstance(p, ToolCallPart)
        ]
        assert calls == ["lookup", "forecast"]
    # Rounds, not runs: every run's first requests went in one batch, their second in another, their last in a third.
    assert emulator.stats()[provider]["batches_created"] == 3

    client = on_fleet.client
    prefix = on_fleet.settings.key_prefix
    # The callbacks run as tasks of their own, after the runs ended: wait for them.
    wait_for(lambda: int(client.get(f"{prefix}bltest:effect_count:{batch.id}") or 0) == runs, "every callback")
    line = f"{batch.id}: {runs} of {runs} succeeded".encode()
    wait_for(lambda: line in client.lrange(f"{prefix}bltest:notified", 0, -1), "on_complete's chain")
    assert int(client.get(f"{prefix}bltest:calls:{batch.id}") or 0) == runs  # each run's callback sent once
    assert PROMPT not in fleet_worker.output()  # the prompt never reaches a message or a log line


def test_structured_output_failures_and_usage_limits_end_as_pydantic_ai_ends_them(on_fleet: RealSetup) -> None:
    structured = agents.run_batch_sync(
        "tests.agent_app:structured_agent", [("s", "Use lookup for Paris.")], max_requests=1, poll_interval=0.2
    )
    failing = agents.run_batch_sync(
        "tests.agent_app:failing_agent",
        [("broken", "Use lookup_broken."), ("flaky", "Use lookup_flaky.")],
        max_requests=2,
        poll_interval=0.2,
    )
    limited = agents.run_batch_sync(
        "tests.agent_app:openai_agent",
        [("limited", PROMPT)],
        deps="tests.agent_app:make_deps",
        max_requests=1,
        poll_interval=0.2,
        usage_limits=UsageLimits(request_limit=2),
    )
    (s,) = agents.results_sync(agents.wait_sync(structured.id))
    assert s.state == RunState.DONE and isinstance(s.output, Forecast)  # typed by the agent's output type

    assert agents.wait_sync(failing.id).status == BatchStatus.COMPLETED
    broken, flaky = agents.results_sync(failing.id)
    assert broken.state == RunState.FAILED and broken.error == "RuntimeError: the lookup service is down"
    assert flaky.state == RunState.DONE  # ModelRetry went back to the model, which answered
    assert "try another city" in flaky.output  # the retry went back to the model as the tool's result

    (over,) = agents.results_sync(agents.wait_sync(limited.id))
    assert over.state == RunState.FAILED and over.error is not None
    assert over.error.startswith("UsageLimitExceeded") and "request_limit of 2" in over.error


def test_a_message_history_input_goes_on_from_where_it_stands(on_fleet: RealSetup) -> None:
    history = [
        ModelRequest.user_text_prompt(PROMPT),
        ModelResponse(parts=[ToolCallPart("lookup", {"city": "Oslo"}, tool_call_id="c1")]),
        ModelRequest(parts=[ToolReturnPart("lookup", "lookup(EARLIER)", tool_call_id="c1")]),
    ]
    batch = agents.run_batch_sync(
        "tests.agent_app:openai_agent",
        [agents.AgentInput("h", message_history=history)],
        deps="tests.agent_app:make_deps",
        max_requests=1,
        poll_interval=0.2,
    )
    (result,) = agents.results_sync(agents.wait_sync(batch.id))
    assert result.output.endswith(": lookup(EARLIER); forecast(1)")  # one more tool round, then the answer
    assert result.usage is not None and result.usage.requests == 2


def test_bad_input_is_refused_before_anything_is_stored(on_fleet: RealSetup) -> None:
    client, prefix = on_fleet.client, on_fleet.settings.key_prefix
    before = set(client.scan_iter(f"{prefix}agent*"))
    cases: list[tuple[str, list[tuple[str, str]], dict[str, object], type[Exception], str]] = [
        ("tests.agent_app:nothing", [("a", "hi")], {}, BatchInputError, "has no attribute 'nothing'"),
        ("tests.agent_app", [("a", "hi")], {}, BatchInputError, "import path `module:name`"),
        ("tests.agent_app:PROMPT", [("a", "hi")], {}, BatchInputError, "not a pydantic-ai Agent"),
        ("tests.app_tasks:record", [("a", "hi")], {}, CallbackNotAllowed, "not in batchline's allowed_agents"),
        ("tests.agent_app:openai_agent", [], {}, BatchInputError, "at least one input"),
        ("tests.agent_app:openai_agent", [("a", "x"), ("a", "y")], {}, BatchInputError, "given twice"),
        ("tests.agent_app:openai_agent", [("a", "")], {}, BatchInputError, "neither a prompt"),
        ("tests.agent_app:openai_agent", [("a", "x")], {"max_wait": 0}, BatchInputError, "max_wait must be"),
        (
            "tests.agent_app:openai_agent",
            [("a", "x")],
            {"callback": "os.system"},
            CallbackNotAllowed,
            "allowed_callbacks",
        ),
        ("tests.agent_app:openai_agent", [("a", "x")], {"deps": "tests.agent_app:missing"}, BatchInputError, "missing"),
        # A deps factory is a function of the agent's module, never a name it imported or reached through it.
        ("tests.agent_app:openai_agent", [("a", "x")], {"deps": "tests.agent_app:os.system"}, BatchInputError, "one"),
        ("tests.agent_app:openai_agent", [("a", "x")], {"deps": "tests.agent_app:Path"}, BatchInputError, "defined"),
        ("tests.agent_app:_agent", [("a", "x")], {}, BatchInputError, "one public name"),
    ]
    for agent, inputs, options, error, says in cases:
        with pytest.raises(error, match=says):
            agents.run_batch_sync(agent, inputs, **options)  # type: ignore[arg-type]
    # A history waiting on a request made elsewhere (or forged to read another job's answer) is not a run's input.
    forged = ModelResponse(
        parts=[],
        provider_response_id="batchline:agent_0-0-0",
        provider_details={"batchline": {"ticket": "agent_0-0-0"}},
        state="suspended",
    )
    suspended = agents.AgentInput("s", message_history=[ModelRequest.user_text_prompt(PROMPT), forged])
    with pytest.raises(BatchInputError, match="suspended response"):
        agents.run_batch_sync("tests.agent_app:openai_agent", [suspended])
    assert set(client.scan_iter(f"{prefix}agent*")) == before


def test_cancel_takes_waiting_requests_out_of_the_pool(on_fleet: RealSetup, emulator: Emulator) -> None:
    batch = agents.run_batch_sync(
        "tests.agent_app:openai_agent",
        [(f"c{i}", PROMPT) for i in range(5)],
        deps="tests.agent_app:make_deps",
        max_requests=1000,
        max_wait=3600,  # the pool would wait an hour for more
    )
    wait_for(lambda: (s := agents.status_sync(batch.id).agent) and s.waiting == 5, "every run to wait in the pool")
    cancelled = batch_cancel_sync(batch.id)  # the job API's cancel works on agent jobs too
    assert cancelled.status == BatchStatus.CANCELLED
    assert cancelled.agent is not None and cancelled.agent.cancelled == 5
    assert all(r.state == RunState.CANCELLED for r in agents.results_sync(batch.id))
    assert emulator.stats()["openai"]["batches_created"] == 0  # nothing was sent, so nothing is paid for
    pools = on_fleet.client.keys(f"{on_fleet.settings.key_prefix}agentpool:*")
    assert all(on_fleet.client.type(k) != b"list" or on_fleet.client.llen(k) == 0 for k in pools)


def test_the_cli_shows_and_exports_an_agent_job(on_fleet: RealSetup) -> None:
    batch = agents.run_batch_sync(
        "tests.agent_app:openai_agent",
        [(f"cli-{i}", PROMPT) for i in range(3)],
        deps="tests.agent_app:make_deps",
        max_requests=3,
        poll_interval=0.2,
    )
    agents.wait_sync(batch.id)
    assert batch_status_sync(batch.id).agent is not None

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "batchline", *args],
            capture_output=True,
            text=True,
            env={**on_fleet.env, "COLUMNS": "200"},
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    shown = cli("status", batch.id)
    assert "agent tests.agent_app:openai_agent" in shown and "succeeded" in shown and "6 tool calls executed" in shown
    assert "COMPLETED" in cli("wait", batch.id, "--timeout", "30")
    lines = [json.loads(line) for line in cli("results", batch.id).splitlines()]
    assert [(line["custom_id"], line["state"]) for line in lines] == [(f"cli-{i}", "done") for i in range(3)]
    assert lines[0]["output"].endswith(": lookup(CLI-0); forecast(1)") and lines[0]["usage"]["requests"] == 3

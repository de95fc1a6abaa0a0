"""The estimate and the budget against the emulator, through a real Celery worker on the real Redis: the estimate's
bounds hold the usage the emulator bills for a realistic workload on each provider, a job over its budget is refused
before anything is stored or sent, and a multi-part job whose cost passes its budget while it runs holds back the
parts not yet created, cancels the running one, and gives every request a result."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import ModelRequest, ModelResponse, TextPart
from pydantic_ai.messages import SystemPromptPart, UserPromptPart

from batchline import (
    BatchInputError,
    BatchStatus,
    batch_create_sync,
    batch_results_sync,
    batch_status_sync,
    estimate_cost_sync,
    worker,
)
from batchline.costs import usd
from batchline.emulator import Emulator, HttpFault
from batchline.providers.openai import OpenAIProvider
from batchline.runtime import runtime_for

from .conftest import RealSetup, WorkerProcess, make_real_setup
from .test_cli_jobs import batchline, write_jsonl
from .test_direct import emulator_env
from .waiting import wait_for

pytestmark = pytest.mark.redis

SYSTEM = (
    "You are the support assistant of a small online bookshop. Answer in at most three sentences, name the order "
    "number when the customer gives one, and never promise a refund: say that a colleague will confirm it by email."
)
TOPICS = [
    "my parcel with order 48213 has not arrived after nine days",
    "the second volume of the trilogy came with a torn cover",
    "can I change the delivery address of an order I placed an hour ago",
    "do you ship to Norway, and what does it cost for three paperbacks",
    "I was charged twice for the same gift card",
    "the e-book I bought will not open on my reader",
]
PASTED = (
    "Here is the email I got from you yesterday: Thank you for your order. Your books are packed and will leave our "
    "warehouse within two working days. You can follow the parcel with the tracking link below once the carrier has "
    "scanned it. If anything is missing or damaged, reply to this email with a photo and we will sort it out."
)


def workload(count: int = 30) -> list[Any]:
    """Support questions of varied length: some with a pasted email, some a second turn, half with a max_tokens."""
    items: list[Any] = []
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        question = f"Hello, {topic}. What should I do?" + (f" {PASTED}" if i % 3 == 0 else "")
        messages: list[Any] = [ModelRequest(parts=[SystemPromptPart(SYSTEM), UserPromptPart(question)])]
        if i % 4 == 1:
            messages += [
                ModelResponse(parts=[TextPart("I am sorry to hear that. Could you tell me the order number?")]),
                ModelRequest(parts=[UserPromptPart(f"It is order {40000 + i * 37}, placed on a Monday.")]),
            ]
        items.append(
            (f"ticket-{i:03d}", messages, {"max_tokens": 150 + 10 * i}) if i % 2 else (f"ticket-{i:03d}", messages)
        )
    return items


@pytest.fixture(scope="module")
def cost_setup(
    redis_url: str, emulator_server: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealSetup]:
    """A real worker process with every provider pointing at the session's emulator, polling at least every second."""
    setup = make_real_setup(redis_url, max_poll_interval=1)
    setup.env.update(emulator_env(emulator_server))
    setup.env.pop("GOOGLE_API_KEY", None)
    process = WorkerProcess(setup.env, tmp_path_factory.mktemp("cost") / "worker.log")
    yield setup
    process.stop()
    setup.cleanup()


@pytest.fixture
def on_worker(cost_setup: RealSetup, emulator: Emulator) -> Iterator[RealSetup]:
    worker.use_app(cost_setup.app)
    try:
        yield cost_setup
    finally:
        worker._current = None


def finished(job_id: str) -> Any:
    wait_for(lambda: batch_status_sync(job_id).is_complete, "the job to end", timeout=90)
    return batch_status_sync(job_id)


@pytest.mark.parametrize("model", ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "google:gemini-2.5-flash"])
def test_the_estimate_holds_what_the_emulator_bills(on_worker: RealSetup, model: str) -> None:
    found = estimate_cost_sync(model, workload())
    batch = finished(batch_create_sync(model, workload(), poll_interval=0.3).id)
    assert batch.status is BatchStatus.COMPLETED and batch.completed_count == 30
    used_in, used_out = batch.usage.input_tokens, batch.usage.output_tokens
    tokens_in, tokens_out = found.input_tokens, found.output_tokens
    assert tokens_in.upper is not None and tokens_in.typical is not None and tokens_out.upper is not None
    assert tokens_in.lower <= used_in <= tokens_in.upper
    assert 0 < used_out <= tokens_out.upper
    assert found.cost.lower is not None and found.cost.upper is not None and batch.cost is not None
    assert found.cost.lower <= batch.cost <= found.cost.upper
    # The figures the README's cost section quotes (`-s` shows them): the typical input estimate against the billed.
    error = (tokens_in.typical - used_in) / used_in
    print(
        f"\n{model}: input billed {used_in}, lower {tokens_in.lower}, typical {tokens_in.typical} ({error:+.0%}), "
        f"upper {tokens_in.upper}; cost {batch.cost} in [{found.cost.lower}, {found.cost.upper}]"
    )
    assert abs(error) < 0.5


def test_a_job_over_its_budget_is_refused_before_anything_is_stored_or_sent(
    on_worker: RealSetup, emulator: Emulator, tmp_path: Path
) -> None:
    store = runtime_for(on_worker.app).store
    before = store.job_ids()
    floor = estimate_cost_sync("openai:gpt-4o-mini", workload()).cost.lower
    assert floor is not None
    with pytest.raises(BatchInputError, match="more than max_cost"):
        batch_create_sync("openai:gpt-4o-mini", workload(), max_cost=floor * Decimal("0.9"))
    rows = [{"custom_id": f"q{i}", "prompt": f"{SYSTEM} {TOPICS[i]}"} for i in range(len(TOPICS))]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    refused = batchline("submit", str(path), "--model", "openai:gpt-4o-mini", "--max-cost", "1e-9", env=on_worker.env)
    assert refused.returncode == 1 and "more than max_cost $1.00e-9; nothing was stored or sent" in refused.stderr
    assert store.job_ids() == before  # nothing stored
    assert emulator.stats()["openai"]["batches_created"] == 0  # nothing sent


def test_passing_the_budget_cancels_a_running_multi_part_job(
    on_worker: RealSetup, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(OpenAIProvider, "max_requests", 5)  # planned in this process: four parts of five requests
    emulator.configure(stage_seconds=1.0)  # a batch runs about three seconds
    # The first part is created at once; the second's create takes 15 s, long enough for the first to end and be
    # fetched, its cost to pass the budget, and the last two parts, not created yet, to be held back.
    emulator.add_fault(HttpFault(kind="slow", delay=0.0, method="POST", path=r"/v1/batches$", times=1))
    emulator.add_fault(HttpFault(kind="slow", delay=15.0, method="POST", path=r"/v1/batches$", times=1))
    requests = [(f"r{i:02d}", [ModelRequest.user_text_prompt(f"Ticket {i}: refund?")]) for i in range(20)]
    found = estimate_cost_sync("openai:gpt-4o-mini", requests)
    assert found.cost.lower is not None
    budget = 2 * found.cost.lower  # above the lower bound (not refused at create), below what the first part bills
    job = batch_create_sync("openai:gpt-4o-mini", requests, poll_interval=0.3, submit_wait=0, max_cost=budget)

    batch = finished(job.id)
    assert batch.status is BatchStatus.CANCELLED
    assert batch.cost is not None and batch.cost > budget and batch.max_cost == budget
    assert batch.cancel_reason is not None and batch.cancel_reason.startswith("its cost so far, $")
    assert batch.cancel_reason.endswith(f"passed its max_cost of {usd(budget)}")
    stats = emulator.stats()
    assert stats["openai"]["batches_created"] == 2  # parts 2 and 3 were held back: never created, never paid
    assert stats["calls"].get("POST /v1/batches/{batch_id}/cancel", 0) >= 1  # part 1 was cancelled while it ran
    parts = batch.provider_batches
    assert [part.id is not None for part in parts] == [True, True, False, False]
    assert parts[0].status == "completed" and parts[1].status == "cancelled"

    results = batch_results_sync(batch)
    assert [r.custom_id for r in results] == [cid for cid, _ in requests]  # every request accounted for
    succeeded = {r.custom_id for r in results if r.is_successful}
    assert {f"r{i:02d}" for i in range(5)} <= succeeded  # the first part's answers are kept
    assert batch.completed_count == len(succeeded) and batch.failed_count == 20 - len(succeeded)
    for result in results:
        if not result.is_successful:
            assert result.error is not None and result.error.code == "canceled"
            assert result.error.message.endswith(f"the job was cancelled as {batch.cancel_reason}.")

    status = batchline("status", job.id, env=on_worker.env)
    assert status.returncode == 0, status.stderr
    assert f"cancelled by batchline: {batch.cancel_reason}" in status.stdout
    assert f"of max_cost {usd(budget)}" in status.stdout

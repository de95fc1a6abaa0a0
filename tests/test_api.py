"""The batch API on the embedded default: what a user calls and what they get back."""

from __future__ import annotations

import asyncio
import gc
from dataclasses import replace

import pytest
from pydantic import BaseModel
from pydantic_ai import ModelRequest, ToolDefinition
from pydantic_ai.messages import TextPart, ToolCallPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.batch import BatchRequest

from batchline import (
    Batch,
    BatchInputError,
    BatchStatus,
    JobNotFound,
    batch_cancel_sync,
    batch_create,
    batch_create_sync,
    batch_results_sync,
    batch_status,
    batch_status_sync,
    batch_wait_sync,
    model_request_batch,
    model_request_batch_sync,
    worker,
)
from batchline.config import Settings
from batchline.providers.test import TestProvider
from batchline.runtime import runtime_for
from batchline.store import Store

from .conftest import set_embedded_settings
from .waiting import wait_for


def prompt(text: str) -> list[ModelRequest]:
    return [ModelRequest.user_text_prompt(text)]


class Calculate(BaseModel):
    """Perform a calculation."""

    expression: str


CALCULATE = ToolDefinition(
    name="calculate", description=Calculate.__doc__, parameters_json_schema=Calculate.model_json_schema()
)


def test_results_come_back_in_request_order(embedded: Settings) -> None:
    ids = [f"q{i}" for i in (5, 1, 9, 3, 7)]
    results = model_request_batch_sync("test", [(cid, prompt(cid)) for cid in ids])
    assert [r.custom_id for r in results] == ids
    assert [r.response.text for r in results if r.response] == [f"Mock response for {cid}" for cid in ids]
    assert all(r.is_successful and r.error is None for r in results)


def test_the_garbage_collector_is_left_as_the_caller_had_it(embedded: Settings) -> None:
    for enabled in (True, False):
        gc.enable() if enabled else gc.disable()
        try:
            batch = batch_create_sync("test", [("a", prompt("a"))])
            assert gc.isenabled() is enabled
            batch_results_sync(batch_wait_sync(batch))
            assert gc.isenabled() is enabled
        finally:
            gc.enable()


def test_a_job_larger_than_a_provider_batch_is_split_invisibly(
    embedded: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TestProvider, "max_requests", 4)
    requests = [(f"r{i}", prompt(f"p{i}")) for i in range(10)]
    batch = batch_create_sync("test", requests)
    assert batch.status is BatchStatus.COMPLETED
    assert [pb.request_count for pb in batch.provider_batches] == [4, 4, 2]
    assert len({pb.id for pb in batch.provider_batches}) == 3
    results = batch_results_sync(batch)
    assert [r.custom_id for r in results] == [f"r{i}" for i in range(10)]
    assert batch.completed_count == 10 and batch.failed_count == 0


def test_the_handle_round_trips_through_json_and_any_reference_works(embedded: Settings) -> None:
    batch = batch_create_sync("test", [("a", prompt("x")), ("b", prompt("y"))])
    saved = batch.model_dump_json()
    restored = Batch.model_validate_json(saved)
    assert restored == batch
    assert restored.status.name == "COMPLETED" and restored.is_complete and restored.is_successful
    assert restored.created_at <= restored.completed_at  # type: ignore[operator]
    assert restored.provider_batches[0].id and restored.provider_batches[0].id.startswith("batch_test_")
    for reference in (restored, batch.id, ("test", restored), ("test", batch.id)):
        args = reference if isinstance(reference, tuple) else (reference,)
        assert batch_status_sync(*args).id == batch.id
        assert [r.custom_id for r in batch_results_sync(*args)] == ["a", "b"]


def test_tools_come_back_as_calls_when_text_output_is_not_allowed(embedded: Settings) -> None:
    params = ModelRequestParameters(function_tools=[CALCULATE], allow_text_output=False)
    results = model_request_batch_sync(
        "test", [("calc-1", prompt("What is 15 * 23?"))], model_request_parameters=params
    )
    (part,) = results[0].response.parts  # type: ignore[union-attr]
    assert isinstance(part, ToolCallPart) and part.tool_name == "calculate"
    assert set(part.args_as_dict()) == {"expression"}


def test_each_request_may_carry_its_own_parameters_and_settings(embedded: Settings) -> None:
    tools = ModelRequestParameters(function_tools=[CALCULATE], allow_text_output=False)
    requests = [
        ("text", prompt("hi")),
        ("tool", prompt("15 * 23"), tools),
        ("warm", prompt("hi"), {"temperature": 0.9}),
        ("both", prompt("hi"), {"model_request_parameters": tools, "model_settings": {"max_tokens": 5}}),
        BatchRequest(custom_id="native", messages=prompt("hi"), model_request_parameters=tools),
    ]
    results = {r.custom_id: r for r in model_request_batch_sync("test", requests)}
    assert isinstance(results["text"].response.parts[0], TextPart)  # type: ignore[union-attr]
    for cid in ("tool", "both", "native"):
        assert isinstance(results[cid].response.parts[0], ToolCallPart)  # type: ignore[union-attr]
    assert results["warm"].response.text == "Mock response for warm"  # type: ignore[union-attr]


def test_a_failed_request_has_a_clear_error(embedded: Settings) -> None:
    results = model_request_batch_sync("test", [("ok", prompt("fine")), ("bad", prompt("[test:error] please"))])
    assert results[0].is_successful
    assert not results[1].is_successful and results[1].response is None
    assert results[1].error is not None
    assert results[1].error.code == "invalid_request_error"
    assert "Rejected" in results[1].error.message
    assert batch_status_sync(batch_create_sync("test", [("bad", prompt("[test:error]"))])).failed_count == 1


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        ([], "empty"),
        ("not a list", "must be a list"),
        ([("a", prompt("x")), ("a", prompt("y"))], "'a' is used twice"),
        ([("", prompt("x"))], "non-empty string"),
        ([(7, prompt("x"))], "non-empty string"),
        ([("a", "just a string")], "non-empty list of pydantic-ai messages"),
        ([("a", [])], "non-empty list of pydantic-ai messages"),
        ([("a", [{"role": "user", "content": "hi"}])], "dict is not a pydantic-ai message"),
        ([("a",)], "must be a (custom_id, messages)"),
        ([("a", prompt("x"), 42)], "third element"),
        ([("a", prompt("x"), {"temperature": object()})], "JSON values"),
    ],
)
def test_bad_input_is_refused_before_anything_is_stored(
    embedded: Settings, embedded_store: Store, requests: object, message: str
) -> None:
    before = embedded_store.job_ids(10_000)
    with pytest.raises(BatchInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        batch_create_sync("test", requests)  # type: ignore[arg-type]
    assert embedded_store.job_ids(10_000) == before
    assert gc.isenabled()  # the collector, paused while requests are built, is back on after a refusal too


def test_an_unknown_provider_names_the_supported_ones(embedded: Settings, embedded_store: Store) -> None:
    before = embedded_store.job_ids(10_000)
    with pytest.raises(NotImplementedError, match=r"'cohere:large'.*'test'"):
        batch_create_sync("cohere:large", [("a", prompt("x"))])
    assert embedded_store.job_ids(10_000) == before


def test_an_unknown_job_is_a_clear_lookup_error(embedded: Settings) -> None:
    with pytest.raises(JobNotFound, match="batch_nope"):
        batch_status_sync("batch_nope")


def slow(settings: Settings, seconds: float) -> None:
    set_embedded_settings(replace(settings, test_delay=seconds))


def test_a_slow_batch_is_polled_until_it_ends(embedded: Settings) -> None:
    slow(embedded, 1.5)
    batch = batch_create_sync("test", [("a", prompt("x"))], poll_interval=0.5)
    assert batch.status is BatchStatus.IN_PROGRESS and not batch.is_complete
    assert batch.provider_batches[0].status == "in_progress"
    done = batch_wait_sync(batch)
    assert done.status is BatchStatus.COMPLETED and done.completed_count == 1


def provider_batch_state(store: Store, batch: Batch) -> dict[bytes, bytes]:
    provider_id = batch.provider_batches[0].id
    return store.redis.hgetall(f"{store.prefix}test:batch:{provider_id}")  # type: ignore[return-value]


def test_cancelling_the_awaiting_task_cancels_the_provider_batch(embedded: Settings, embedded_store: Store) -> None:
    slow(embedded, 60)

    async def scenario() -> str:
        task = asyncio.create_task(model_request_batch("test", [("a", prompt("x"))], poll_interval=0.2))
        while not embedded_store.job_ids(1) or batch_status_sync(embedded_store.job_ids(1)[0]).status != "in_progress":
            await asyncio.sleep(0.05)
        job_id = embedded_store.job_ids(1)[0]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return job_id

    job_id = asyncio.run(scenario())
    final = batch_wait_sync(job_id)
    assert final.status is BatchStatus.CANCELLED
    assert b"cancelled_at" in provider_batch_state(embedded_store, final)
    (result,) = batch_results_sync(final)
    assert result.error is not None and result.error.code == "canceled"


def test_reaching_the_timeout_cancels_the_job(embedded: Settings, embedded_store: Store) -> None:
    slow(embedded, 60)
    with pytest.raises(TimeoutError):
        model_request_batch_sync("test", [("a", prompt("x"))], poll_interval=0.2, timeout=1.0)
    final = batch_wait_sync(embedded_store.job_ids(1)[0])
    assert final.status is BatchStatus.CANCELLED
    assert b"cancelled_at" in provider_batch_state(embedded_store, final)


def test_batch_cancel_stops_a_running_job_and_keeps_it_readable(embedded: Settings, embedded_store: Store) -> None:
    slow(embedded, 60)
    batch = batch_create_sync("test", [("a", prompt("x")), ("b", prompt("y"))])
    assert batch.status is BatchStatus.IN_PROGRESS
    assert batch_cancel_sync("test", batch).status is BatchStatus.CANCELLING
    final = batch_wait_sync(batch)
    assert final.status is BatchStatus.CANCELLED and final.is_complete and not final.is_successful
    assert final.failed_count == 2
    assert batch_cancel_sync(final).status is BatchStatus.CANCELLED  # cancelling an ended job changes nothing


def test_async_twins_agree_with_the_sync_ones(embedded: Settings) -> None:
    async def scenario() -> tuple[Batch, Batch]:
        created = await batch_create("test", [("a", prompt("x"))])
        return created, await batch_status(created.id)

    created, status = asyncio.run(scenario())
    assert created.id == status.id and status == batch_status_sync(created)


def test_rate_limited_requests_are_resubmitted_in_a_new_batch(embedded: Settings) -> None:
    requests = [
        ("steady", prompt("fine")),
        ("flaky-1", prompt("[test:flaky] a")),
        ("flaky-2", prompt("[test:flaky] b")),
    ]
    batch = batch_create_sync("test", requests)
    assert batch.status is BatchStatus.COMPLETED
    assert [pb.request_count for pb in batch.provider_batches] == [3, 2]  # the second batch holds the two retried
    results = batch_results_sync(batch)
    assert [r.custom_id for r in results] == ["steady", "flaky-1", "flaky-2"]
    assert all(r.is_successful for r in results)
    assert (batch.completed_count, batch.failed_count) == (3, 0)


def test_without_resubmissions_the_transient_error_is_the_result(embedded: Settings) -> None:
    results = model_request_batch_sync("test", [("flaky", prompt("[test:flaky]"))], max_resubmissions=0)
    assert results[0].error is not None and results[0].error.code == "rate_limit_exceeded"


def test_a_finished_job_keeps_no_prompt_in_the_store(embedded: Settings, embedded_store: Store) -> None:
    batch = batch_create_sync("test", [("a", prompt("a very private prompt"))])
    assert batch.is_complete
    for key in embedded_store.redis.scan_iter(match=f"{embedded_store.prefix}job:{batch.id}*"):
        kind = embedded_store.redis.type(key)
        if kind == b"hash":
            values = embedded_store.redis.hvals(key)
        elif kind == b"list":
            values = embedded_store.redis.lrange(key, 0, -1)
        else:
            continue
        assert not any(b"very private" in v for v in values), key


def test_the_prompts_are_gone_before_anyone_can_see_the_job_ended(
    embedded: Settings, embedded_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job's end and the prompts' deletion were two steps, in that order: a caller that saw the job end (as
    `batch_create_sync` above does) could still find its prompts, and the test above failed now and then."""
    seen_at_the_end: list[int] = []
    transition = Store.transition_job

    def ending(self: Store, job_id: str, state: object, *args: object, **fields: object) -> bool:
        if "completed_at" in fields:
            seen_at_the_end.append(int(self.redis.exists(self.job_key(job_id, ":req"))))
        return transition(self, job_id, state, *args, **fields)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "transition_job", ending)
    batch = batch_create_sync("test", [("a", prompt("a very private prompt"))])
    assert batch.is_complete
    assert seen_at_the_end == [0]


def test_a_batch_deleted_at_the_provider_ends_the_job_instead_of_polling_forever(
    embedded: Settings, embedded_store: Store
) -> None:
    slow(embedded, 60)
    batch = batch_create_sync("test", [("a", prompt("x"))], poll_interval=0.2)
    embedded_store.redis.delete(f"{embedded_store.prefix}test:batch:{batch.provider_batches[0].id}")
    final = batch_wait_sync(batch)
    assert final.status is BatchStatus.FAILED
    (result,) = batch_results_sync(final)
    assert result.error is not None and "no batch" in result.error.message


def test_a_job_timeout_is_kept_by_the_workers_even_when_nobody_waits(embedded: Settings, embedded_store: Store) -> None:
    slow(embedded, 60)
    batch = batch_create_sync("test", [("a", prompt("x"))], poll_interval=0.2, timeout=1.0)
    final = batch_wait_sync(batch)  # only reads the store: the worker's poll does the cancelling
    assert final.status is BatchStatus.CANCELLED
    assert b"cancelled_at" in provider_batch_state(embedded_store, final)


def test_a_caller_that_leaves_while_its_job_is_created_leaves_no_batch_running(embedded: Settings) -> None:
    # The caller's timeout passes while the requests are still being encoded and stored: the job is stored all the
    # same (the thread cannot be stopped midway), and is then cancelled, not left to run for a caller that is gone.
    set_embedded_settings(replace(embedded, test_delay=3600))  # the provider batch runs until cancelled
    store = runtime_for(worker.app).store
    before = set(store.job_ids(10_000))
    requests = [(f"r{i}", [ModelRequest.user_text_prompt(f"q{i}")]) for i in range(5000)]

    async def leave_early() -> None:
        async with asyncio.timeout(0.01):
            await model_request_batch("test", requests)

    with pytest.raises(TimeoutError):
        asyncio.run(leave_early())
    (job_id,) = set(store.job_ids(10_000)) - before
    final = wait_for(lambda: (b := batch_status_sync(job_id)).is_complete and b, "the job's end", timeout=60)
    assert final.status is BatchStatus.CANCELLED

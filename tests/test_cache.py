"""The response cache, step by step on fakeredis with the `test` provider: what is sent, what is answered from the
cache or by an identical request, and that every job ends with a result for each request, whatever the job it waited
for did. Through a real worker, on real Redis and the emulator: tests/test_cache_workers.py."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, NamedTuple, cast

import pytest
from pydantic_ai import ModelRequest
from pydantic_ai.models.batch import BatchRequest
from pydantic_ai.models.openai import OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider

from batchline import jobs, pipeline
from batchline.cache import CacheStore, plan_requests
from batchline.cache.plan import request_key
from batchline.config import Settings
from batchline.errors import BatchInputError, SettingsError
from batchline.model_forms import resolve_model
from batchline.pipeline import Next
from batchline.providers import Encoded, get_provider
from batchline.providers.test import ERROR_MARKER
from batchline.records import JobRecord, PartState
from batchline.results import read_results
from batchline.runtime import Runtime
from batchline.status import batch_of
from batchline.types import BatchResult, BatchStatus

from .test_pipeline_steps import end_at_provider, make_runtime


@pytest.fixture
def runtime() -> Runtime:
    return make_runtime()


def cache_job(runtime: Runtime, prompts: list[str], prefix: str = "r", **record: Any) -> str:
    """A job created as `batch_create(..., cache=True)` creates it (its submit not yet run), one request a prompt."""
    provider = runtime.provider("test")
    asks = [
        BatchRequest(custom_id=f"{prefix}{i}", messages=[ModelRequest.user_text_prompt(text)])
        for i, text in enumerate(prompts)
    ]
    fields: dict[str, Any] = {"poll_interval": 1.0, "max_resubmissions": 0, **record}
    job = JobRecord(model="test", total=len(asks), created_at=time.time(), **fields)
    encoded = provider.encode_many(asks)
    job_id, _ = jobs.store_job(runtime, provider, job, [(a, None) for a in asks], encoded, cache=True)
    return job_id


def work(runtime: Runtime, job_id: str, *steps: Next) -> set[int]:
    """Run `steps` and every step they call for, as workers would, until only polls of running parts are left;
    answer those parts."""
    queue, waiting = list(steps), set()
    while queue:
        step = queue.pop(0)
        if step.step == "submit":
            queue += pipeline.submit(runtime, job_id)
        elif step.step == "poll":
            after = pipeline.poll(runtime, job_id, step.part)
            if after is not None and after.step == "poll":
                waiting.add(step.part)
            elif after is not None:
                queue.append(after)
        elif step.step == "fetch":
            queue += pipeline.fetch(runtime, job_id, step.part)
    return waiting


def submit(runtime: Runtime, job_id: str) -> set[int]:
    return work(runtime, job_id, Next("submit"))


def run_out(runtime: Runtime, job_id: str, waiting: set[int]) -> set[int]:
    """The provider ends every batch of the job; its polls run once more."""
    for n, part in enumerate(runtime.store.parts(job_id, runtime.store.load_job(job_id).parts)):
        if part.state == PartState.SUBMITTED:
            end_at_provider(runtime, job_id, n)
    return work(runtime, job_id, *(Next("poll", n) for n in sorted(waiting)))


def sent(runtime: Runtime) -> list[str]:
    """Every custom_id the `test` provider received in a batch, as often as it received it."""
    redis, prefix = runtime.store.redis, runtime.store.prefix
    out: list[str] = []
    for key in sorted(redis.scan_iter(match=f"{prefix}test:batch:*:in")):
        out += [cid.decode() for cid in cast(list[bytes], redis.lrange(key, 0, -1))[::2]]
    return out


def results(runtime: Runtime, job_id: str) -> dict[str, BatchResult]:
    return {r.custom_id: r for r in read_results(runtime, job_id)}


def texts(runtime: Runtime, job_id: str) -> dict[str, str | None]:
    return {cid: r.response.text if r.response else None for cid, r in results(runtime, job_id).items()}


def state(runtime: Runtime, job_id: str) -> BatchStatus:
    return runtime.store.load_job(job_id).state


# -- keys --------------------------------------------------------------------------------------------------------------
def test_a_key_is_the_request_not_its_custom_id() -> None:
    codec = get_provider("openai:gpt-4o-mini")
    body = b'{"model":"gpt-4o-mini","input":[{"role":"user","content":"hi"}]}'
    same_in_another_order = b'{"input":[{"content":"hi","role":"user"}],"model":"gpt-4o-mini"}'
    plan = plan_requests(
        codec,
        "openai:gpt-4o-mini",
        "",
        [Encoded("a", body, "gpt-4o-mini"), Encoded("b", same_in_another_order, "gpt-4o-mini")],
    )
    assert [e.custom_id for e in plan.leaders] == ["a"] and plan.followers == {"a": ["b"]}
    key = plan.keys["a"]
    canonical = codec.cache_body(body)
    assert request_key("openai:gpt-4o-mini", "", "gpt-4o-mini", canonical) == key
    assert request_key("openai:gpt-4o", "", "gpt-4o-mini", canonical) != key  # another model
    assert request_key("openai:gpt-4o-mini", "", "/v1/chat/completions gpt-4o-mini", canonical) != key  # endpoint
    assert request_key("openai:gpt-4o-mini", '{"base_url":"https://gw.example/v1"}', "gpt-4o-mini", canonical) != key
    assert request_key("openai:gpt-4o-mini", "", "gpt-4o-mini", canonical.replace(b"hi", b"ho")) != key


def test_a_model_instances_api_key_is_not_in_its_key_but_its_base_url_is() -> None:
    codec = get_provider("openai:gpt-4o-mini")
    request = [BatchRequest(custom_id="a", messages=[ModelRequest.user_text_prompt("hi")])]
    encoded = codec.encode_many(request)

    def key_of(base_url: str, api_key: str) -> str:
        form = resolve_model(OpenAIResponsesModel("gpt-4o-mini", provider=OpenAIProvider(base_url, api_key=api_key)))
        endpoint = form.endpoint.to_json() if form.endpoint is not None else ""
        assert api_key not in endpoint
        return plan_requests(codec, form.model, endpoint, encoded).keys["a"]

    gateway = "https://gateway.example.com/v1"
    assert key_of(gateway, "sk-one-0123456789") == key_of(gateway, "sk-two-9876543210")
    assert key_of(gateway, "sk-one-0123456789") != key_of("https://other.example.com/v1", "sk-one-0123456789")


def test_cache_takes_true_or_false_and_its_settings_are_checked() -> None:
    from batchline import batch_create_sync

    with pytest.raises(BatchInputError, match="cache must be True or False"):
        batch_create_sync("test", [("a", [ModelRequest.user_text_prompt("x")])], cache="yes")  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="BATCHLINE_CACHE_TTL_SECONDS must be a whole number, at least 60"):
        Settings.load({}, {"BATCHLINE_CACHE_TTL_SECONDS": "10"})
    with pytest.raises(SettingsError, match="BATCHLINE_CACHE_KEY_PREFIX must be a non-empty key prefix"):
        Settings.load({}, {"BATCHLINE_CACHE_KEY_PREFIX": "tenant a"})
    loaded = Settings.load({}, {"BATCHLINE_CACHE_KEY_PREFIX": "tenant-a:", "BATCHLINE_CACHE_TTL_SECONDS": "3600"})
    assert (loaded.cache_key_prefix, loaded.cache_ttl_seconds) == ("tenant-a:", 3600)


# -- within a job ------------------------------------------------------------------------------------------------------
def test_identical_requests_of_a_job_are_sent_once_and_each_gets_the_answer(runtime: Runtime) -> None:
    job_id = cache_job(runtime, ["x", "y", "x", "z", "x", "y"])
    assert runtime.store.part(job_id, 0).total == 3  # the first of each
    run_out(runtime, job_id, submit(runtime, job_id))
    assert sorted(sent(runtime)) == ["r0", "r1", "r3"]
    assert state(runtime, job_id) == BatchStatus.COMPLETED
    got = results(runtime, job_id)
    assert {cid: r.response.text for cid, r in got.items() if r.response} == {
        "r0": "Mock response for r0",
        "r1": "Mock response for r1",
        "r2": "Mock response for r0",
        "r3": "Mock response for r3",
        "r4": "Mock response for r0",
        "r5": "Mock response for r1",
    }
    assert {cid for cid, r in got.items() if r.cached} == {"r2", "r4", "r5"}
    batch = batch_of(runtime, job_id)
    assert (batch.completed_count, batch.failed_count, batch.cached_count) == (6, 0, 3)


def test_a_fetch_that_dies_before_its_part_is_stored_shares_nothing_twice(runtime: Runtime) -> None:
    job_id = cache_job(runtime, ["x", "x", "y"])
    run_out(runtime, job_id, submit(runtime, job_id))
    before = runtime.store.load_job(job_id)
    runtime.store.set_part(job_id, 0, state=PartState.ENDED)  # killed after sharing, before marking it stored
    pipeline.fetch(runtime, job_id, 0)
    after = runtime.store.load_job(job_id)
    counts = (after.succeeded, after.failed, after.cached)
    assert counts == (before.succeeded, before.failed, before.cached) == (3, 0, 1)
    stream = runtime.store.redis.xrange(runtime.store.job_key(job_id, ":stream"))
    assert sorted(cid.decode() for _, fields in stream for cid in fields) == ["r0", "r1", "r2"]  # each once


# -- across jobs -------------------------------------------------------------------------------------------------------
def test_a_request_answered_before_is_not_sent_again(runtime: Runtime) -> None:
    first = cache_job(runtime, ["x", "y"], prefix="a")
    run_out(runtime, first, submit(runtime, first))
    assert sorted(sent(runtime)) == ["a0", "a1"]

    second = cache_job(runtime, ["y", "x", "y"], prefix="b")
    assert list(pipeline.submit(runtime, second)) == [Next("deliver")]  # ended in its submit
    assert sorted(sent(runtime)) == ["a0", "a1"]  # nothing more reached the provider
    assert state(runtime, second) == BatchStatus.COMPLETED
    got = results(runtime, second)
    assert [(r.custom_id, r.cached, r.response.text if r.response else None) for r in got.values()] == [
        ("b0", True, "Mock response for a1"),
        ("b1", True, "Mock response for a0"),
        ("b2", True, "Mock response for a1"),
    ]
    batch = batch_of(runtime, second)
    assert (batch.completed_count, batch.cached_count, batch.usage.input_tokens) == (3, 3, 0)  # nothing paid
    assert [p.status for p in batch.provider_batches] == ["cached"]


def test_a_failure_is_not_cached(runtime: Runtime) -> None:
    first = cache_job(runtime, [f"{ERROR_MARKER} x", "y"], prefix="a")
    run_out(runtime, first, submit(runtime, first))
    assert results(runtime, first)["a0"].error is not None
    second = cache_job(runtime, [f"{ERROR_MARKER} x", "y"], prefix="b")
    run_out(runtime, second, submit(runtime, second))
    assert sorted(sent(runtime)) == ["a0", "a1", "b0"]  # the failed request went again; the answered one did not
    got = results(runtime, second)
    assert got["b0"].error is not None and not got["b0"].cached
    assert got["b1"].cached and got["b1"].response is not None


def test_tenants_with_their_own_prefix_share_no_answer() -> None:
    tenant_a = make_runtime(cache_key_prefix="tenant-a:")
    tenant_b = Runtime(replace(tenant_a.settings, cache_key_prefix="tenant-b:"), tenant_a.store)  # the same Redis
    first = cache_job(tenant_a, ["x"], prefix="a")
    run_out(tenant_a, first, submit(tenant_a, first))
    other = cache_job(tenant_b, ["x"], prefix="b")
    run_out(tenant_b, other, submit(tenant_b, other))
    assert sorted(sent(tenant_a)) == ["a0", "b0"]  # tenant b's request was sent
    assert not results(tenant_b, other)["b0"].cached
    again = cache_job(tenant_a, ["x"], prefix="c")
    submit(tenant_a, again)
    assert results(tenant_a, again)["c0"].cached and sorted(sent(tenant_a)) == ["a0", "b0"]
    assert runtime_keys(tenant_a, "tenant-a:res:") == runtime_keys(tenant_a, "tenant-b:res:") == 1


def runtime_keys(runtime: Runtime, infix: str) -> int:
    return len(list(runtime.store.redis.scan_iter(match=f"{runtime.store.prefix}{infix}*")))


# -- in flight ---------------------------------------------------------------------------------------------------------
class Waiting(NamedTuple):
    first: str
    second: str
    polls_a: set[int]
    polls_b: set[int]


def waiting_jobs(runtime: Runtime) -> Waiting:
    """Job A in flight with x and y; job B, created after, shares x and y and has z of its own."""
    first = cache_job(runtime, ["x", "y"], prefix="a")
    polls_a = submit(runtime, first)
    second = cache_job(runtime, ["z", "x", "y", "x"], prefix="b")
    polls_b = submit(runtime, second)
    parts = runtime.store.parts(second, runtime.store.load_job(second).parts)
    assert [(p.state, p.provider_status, p.total) for p in parts] == [
        (PartState.SUBMITTED, "in_progress", 1),  # z went at once
        (PartState.PENDING, "waiting", 2),  # x and y wait for job A's
    ]
    assert polls_b == {0, 1} and sorted(sent(runtime)) == ["a0", "a1", "b0"]
    assert batch_of(runtime, second).provider_batches[1].status == "waiting"
    return Waiting(first, second, polls_a, polls_b)


def test_a_request_in_flight_in_another_job_is_sent_once(runtime: Runtime) -> None:
    w = waiting_jobs(runtime)
    assert work(runtime, w.second, Next("poll", 1)) == {1}  # still waiting: it looks again later
    run_out(runtime, w.first, w.polls_a)
    assert state(runtime, w.first) == BatchStatus.COMPLETED
    run_out(runtime, w.second, w.polls_b)
    assert state(runtime, w.second) == BatchStatus.COMPLETED
    assert sorted(sent(runtime)) == ["a0", "a1", "b0"]
    assert texts(runtime, w.second) == {
        "b0": "Mock response for b0",
        "b1": "Mock response for a0",
        "b2": "Mock response for a1",
        "b3": "Mock response for a0",
    }
    assert {cid for cid, r in results(runtime, w.second).items() if r.cached} == {"b1", "b2", "b3"}
    assert runtime.store.last_poll(w.second, 1) is None  # its poll chain is over


def test_requests_a_cancelled_job_will_not_answer_are_sent_by_the_job_waiting_for_them(runtime: Runtime) -> None:
    w = waiting_jobs(runtime)
    assert pipeline.request_cancel(runtime, w.first)
    work(runtime, w.first, *pipeline.cancel(runtime, w.first))
    assert state(runtime, w.first) == BatchStatus.CANCELLED
    polls = work(runtime, w.second, Next("poll", 1))
    assert polls == {0, 2}  # x and y went in a new part, created and polled (the submit polls z's part again too)
    assert [p.status for p in batch_of(runtime, w.second).provider_batches] == ["in_progress", "moved", "in_progress"]
    assert runtime.store.last_poll(w.second, 1) is None  # the waiting part's chain is over: the sweep leaves it be
    run_out(runtime, w.second, polls)
    assert state(runtime, w.second) == BatchStatus.COMPLETED
    assert sorted(sent(runtime)) == ["a0", "a1", "b0", "b1", "b2"]  # b3 is b1's duplicate
    assert texts(runtime, w.second) == {
        "b0": "Mock response for b0",
        "b1": "Mock response for b1",
        "b2": "Mock response for b2",
        "b3": "Mock response for b1",
    }
    assert {cid for cid, r in results(runtime, w.second).items() if r.cached} == {"b3"}


def test_a_marker_left_by_a_job_that_ended_without_answering_is_taken_over(runtime: Runtime) -> None:
    """Job A ended (its record says so) but never let its markers go, as if it died between two writes."""
    w = waiting_jobs(runtime)
    assert runtime.store.transition_job(w.first, BatchStatus.FAILED, BatchStatus.IN_PROGRESS)
    run_out(runtime, w.second, work(runtime, w.second, Next("poll", 1)))
    assert state(runtime, w.second) == BatchStatus.COMPLETED
    assert len(results(runtime, w.second)) == 4 and sorted(sent(runtime)) == ["a0", "a1", "b0", "b1", "b2"]


def test_a_waiting_job_that_is_cancelled_ends_with_its_requests_cancelled(runtime: Runtime) -> None:
    w = waiting_jobs(runtime)
    assert pipeline.request_cancel(runtime, w.second)
    work(runtime, w.second, *pipeline.cancel(runtime, w.second))
    assert state(runtime, w.second) == BatchStatus.CANCELLED
    got = results(runtime, w.second)
    assert {cid: r.error.code if r.error else None for cid, r in got.items()} == {
        "b0": "canceled",
        "b1": "canceled",
        "b2": "canceled",
        "b3": "canceled",  # x's duplicate, given x's result
    }
    run_out(runtime, w.first, w.polls_a)  # the job it waited for is not held up by it
    assert state(runtime, w.first) == BatchStatus.COMPLETED


def test_a_waiting_part_past_the_jobs_deadline_ends_cancelled(runtime: Runtime) -> None:
    w = waiting_jobs(runtime)
    runtime.store.redis.hset(runtime.store.job_key(w.second), "deadline", time.time() - 1)
    assert pipeline.poll(runtime, w.second, 1) == Next("fetch", 1)
    assert state(runtime, w.second) == BatchStatus.CANCELLING
    pipeline.fetch(runtime, w.second, 1)
    got = results(runtime, w.second)
    assert {cid: r.error.code for cid, r in got.items() if r.error} == {
        "b1": "canceled",
        "b2": "canceled",
        "b3": "canceled",
    }


def test_two_jobs_waiting_on_each_other_cannot_happen(runtime: Runtime) -> None:
    """Each job's part is screened whole before it is sent: the first takes every marker it needs, so the second
    waits for it and it waits for nothing."""
    first = cache_job(runtime, ["x", "y"], prefix="a")
    second = cache_job(runtime, ["y", "x"], prefix="b")
    polls_a, polls_b = submit(runtime, first), submit(runtime, second)
    parts = runtime.store.parts(first, 1)
    assert parts[0].provider_status != "waiting"
    run_out(runtime, first, polls_a)
    run_out(runtime, second, polls_b)
    assert state(runtime, first) == state(runtime, second) == BatchStatus.COMPLETED
    assert sorted(sent(runtime)) == ["a0", "a1"]


def test_a_redelivered_screen_changes_nothing(runtime: Runtime) -> None:
    first = cache_job(runtime, ["x"], prefix="a")
    submit(runtime, first)
    second = cache_job(runtime, ["x", "w"], prefix="b")
    job = runtime.store.load_job(second)
    store = CacheStore(runtime.store)
    version = runtime.store.part(second, 0)
    assert store.screen(second, job, 0, "first").spawned == 1
    assert runtime.store.part(second, 0) != version
    assert not store.screen(second, job, 0, "first").committed  # a second submit: the part was screened
    assert runtime.store.load_job(second).parts == 2 and runtime.store.part(second, 0).total == 1

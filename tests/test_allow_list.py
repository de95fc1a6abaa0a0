"""The callback allow-list: every canvas form is read down to its tasks, anything unreadable is refused, and the
deliver step checks again, so a job record written straight into the store cannot make a worker run another task."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from celery import Signature, chain, chord, chunks, group, signature
from celery.canvas import xmap, xstarmap
from pydantic_ai import ModelRequest

from batchline import BatchInputError, batch_create_sync, batch_status_sync, worker
from batchline.config import Settings
from batchline.delivery import check_tasks, completion_spec, refuse_delivery
from batchline.errors import CallbackNotAllowed
from batchline.records import JobRecord
from batchline.runtime import runtime_for

from .conftest import RealSetup, WorkerProcess, make_real_setup, set_embedded_settings, with_settings
from .example_helpers import wait_for

ALLOWED = frozenset({"app.ok", "app.fine"})
ok, fine, evil = signature("app.ok"), signature("app.fine"), signature("app.evil")


def check(on_complete: str | Signature | None, callback: str | None = None) -> None:
    """What the API checks: the spec exactly as the job stores it."""
    check_tasks(callback, completion_spec(on_complete), ALLOWED)


# Each canvas form, once with only allowed tasks and once with app.evil hidden where that form keeps its tasks.
FORMS: dict[str, tuple[Any, Any]] = {
    "name": ("app.ok", "app.evil"),
    "signature": (ok, evil),
    "chain": (chain(ok, fine), chain(ok, evil)),
    "group": (group(ok, fine), group(ok, evil)),
    "chord header": (chord([ok, fine], fine), chord([ok, evil], fine)),
    "chord body": (chord([ok, fine], fine), chord([ok, fine], evil)),
    "chord from a chain of a group": (chain(group(ok, ok), fine), chain(group(ok, evil), fine)),
    "xmap": (xmap(ok, [1, 2]), xmap(evil, [1, 2])),
    "xstarmap": (xstarmap(ok, [[1]]), xstarmap(evil, [[1]])),
    "chunks": (chunks(ok, [[1], [2]], 1), chunks(evil, [[1], [2]], 1)),
    "link": (signature("app.ok", link=fine), signature("app.ok", link=evil)),
    "link list": (signature("app.ok", link=[fine, ok]), signature("app.ok", link=[fine, evil])),
    "link_error": (signature("app.ok", link_error=fine), signature("app.ok", link_error=evil)),
    "link_error list": (signature("app.ok", link_error=[fine]), signature("app.ok", link_error=[ok, evil])),
    "link inside a chain": (chain(ok, signature("app.fine", link=ok)), chain(ok, signature("app.fine", link=evil))),
    "signature in kwargs": (
        signature("app.ok", kwargs={"then": dict(fine)}),
        signature("app.ok", kwargs={"then": dict(evil)}),
    ),
    "signature deep in args": (
        signature("app.ok", args=[{"steps": [dict(fine)]}]),
        signature("app.ok", args=[{"steps": [dict(evil)]}]),
    ),
    "chain option": (signature("app.ok", chain=[dict(fine)]), signature("app.ok", chain=[dict(evil)])),
    "chord option": (signature("app.ok", chord=dict(fine)), signature("app.ok", chord=dict(evil))),
}


@pytest.mark.parametrize("form", FORMS)
def test_each_canvas_form_of_allowed_tasks_passes(form: str) -> None:
    check(FORMS[form][0])


@pytest.mark.parametrize("form", FORMS)
def test_a_disallowed_task_anywhere_in_a_canvas_is_refused_by_name(form: str) -> None:
    with pytest.raises(CallbackNotAllowed, match=r"'app\.evil' is not in batchline's allowed_callbacks"):
        check(FORMS[form][1])


def test_a_kwarg_named_task_is_an_argument_not_a_signature() -> None:
    check(signature("app.ok", kwargs={"task": "anything"}))  # notify.s(task="x") calls app.ok with task="x"


def stored(sig: dict[str, Any]) -> str:
    return orjson.dumps(sig).decode()


PLAIN = dict(ok)
# Shapes Celery would run but batchline cannot prove safe: each is refused, with what was not understood named.
UNREADABLE: dict[str, tuple[str, str]] = {
    "an unknown canvas task": (stored({**PLAIN, "task": "celery.accumulate"}), "canvas task 'celery.accumulate'"),
    "a canvas task without its structure": (
        stored({**PLAIN, "task": "celery.map", "kwargs": {"task": "app.evil", "it": [1]}}),
        "not a Celery signature",
    ),
    "a subtask_type that contradicts the task": (
        stored({**dict(chain(ok, fine)), "subtask_type": "chord"}),
        "marked 'chord' but names 'celery.chain'",
    ),
    "an unknown subtask_type": (stored({**PLAIN, "subtask_type": "starchord"}), "marked as a 'starchord' canvas"),
    "an unknown kwarg of a canvas": (
        stored({**dict(chain(ok, fine)), "kwargs": {"tasks": [PLAIN], "extra": [dict(evil)]}}),
        "kwargs batchline cannot check",
    ),
    "an unknown field": (stored({**PLAIN, "callbacks": [dict(evil)]}), "fields batchline cannot check: callbacks"),
    "a task name as a link": (stored({**PLAIN, "options": {"link": "app.evil"}}), "option 'link' must hold signatures"),
    "headers that rename the task": (
        stored({**PLAIN, "options": {"headers": {"task": "app.evil"}}}),
        "option 'headers'",
    ),
    "a list where a canvas goes": (orjson.dumps([PLAIN]).decode(), "is not in batchline's allowed_callbacks"),
    "no task": (stored({**PLAIN, "task": ""}), "names no task"),
    "broken JSON": ("{not json", "neither a task name nor a canvas"),
    "a subtask_type that is a list": (stored({**PLAIN, "subtask_type": ["chain"]}), "subtask_type that is no name"),
    "a canvas nested 500 deep": (
        '{"task":"app.ok","args":[' * 500 + "]}" * 500,
        "nested too deeply",
    ),
}


@pytest.mark.parametrize("case", UNREADABLE)
def test_a_canvas_batchline_cannot_read_is_refused_saying_what(case: str) -> None:
    spec, what = UNREADABLE[case]
    with pytest.raises(CallbackNotAllowed, match=what):
        check_tasks(None, spec, ALLOWED)


def test_an_empty_callback_or_on_complete_is_refused() -> None:
    with pytest.raises(CallbackNotAllowed, match="must name a task"):
        check_tasks("", None, ALLOWED)
    with pytest.raises(CallbackNotAllowed, match="must name a task"):
        check_tasks(None, "", ALLOWED)


def prompts(count: int) -> list[tuple[str, list[ModelRequest]]]:
    return [(f"item-{i}", [ModelRequest.user_text_prompt(f"Describe item {i}")]) for i in range(count)]


def test_the_api_refuses_an_xmap_of_a_disallowed_task_before_storing_anything(embedded: Settings) -> None:
    set_embedded_settings(with_settings(embedded, allowed_callbacks=ALLOWED))
    store = runtime_for(worker.app).store
    before = set(store.redis.keys("*"))
    for bad in (xmap(evil, [1, 2]), chunks(evil, [[1]], 1), signature("app.ok", link=evil)):
        with pytest.raises(BatchInputError, match=r"'app\.evil'"):
            batch_create_sync("test", prompts(1), on_complete=bad, submit_wait=0)
    with pytest.raises(BatchInputError, match="callback must name a task"):
        batch_create_sync("test", prompts(1), callback="", submit_wait=0)
    assert set(store.redis.keys("*")) == before


def test_the_deliver_step_refuses_a_crafted_job_record_and_records_why(embedded: Settings) -> None:
    set_embedded_settings(with_settings(embedded, allowed_callbacks=ALLOWED))
    runtime = runtime_for(worker.app)
    job = {"callback": "app.ok", "on_complete": stored(dict(xmap(evil, [1])))}
    runtime.store.redis.hset(runtime.store.job_key("batch_crafted"), mapping=job)
    assert refuse_delivery(runtime, "batch_crafted", JobRecord.from_hash(job))
    refused = runtime.store.load_job("batch_crafted").delivery_error or ""
    assert "'app.evil' is not in batchline's allowed_callbacks" in refused
    fine_job = {"callback": "app.ok", "on_complete": stored(dict(xmap(ok, [1])))}
    assert not refuse_delivery(runtime, "batch_fine", JobRecord.from_hash(fine_job))


# -- through a real worker --------------------------------------------------------------------------------------------
@pytest.fixture
def summarise_only(redis_url: str, tmp_path: Path) -> Iterator[tuple[RealSetup, WorkerProcess]]:
    """A worker that allows only bltest.summarise; bltest.notify and bltest.record are the application's too, but
    not allowed, and each leaves a trace in Redis when it runs."""
    setup = make_real_setup(redis_url, allowed_callbacks="bltest.summarise")
    process = WorkerProcess(setup.env, tmp_path / "worker.log", extra=["-I", "tests.app_tasks"])
    worker.use_app(setup.app)
    yield setup, process
    worker._current = None
    process.stop()
    setup.cleanup()


@pytest.mark.redis
def test_a_job_record_written_into_redis_cannot_make_the_worker_run_a_disallowed_task(
    summarise_only: tuple[RealSetup, WorkerProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    setup, process = summarise_only
    store = runtime_for(setup.app).store
    notified = f"{store.prefix}bltest:notified"
    crafted = {
        # celery.map runs its inner task inside the worker: the old check skipped it without reading it.
        "on_complete": {"on_complete": stored(dict(xmap(signature("bltest.notify"), ["pwned"])))},
        "callback": {"callback": "bltest.record"},
    }
    for what, fields in crafted.items():
        sent: list[str] = []
        with monkeypatch.context() as patch:  # the API stores a legitimate job; its submit is held back
            patch.setattr(setup.app, "send_task", lambda name, sent=sent, **_: sent.append(name))
            batch = batch_create_sync("test", prompts(3), on_complete="bltest.summarise", submit_wait=0)
        assert sent == ["batchline.submit"]
        store.redis.hset(store.job_key(batch.id), mapping=fields)  # then the record is changed behind its back
        setup.app.send_task("batchline.submit", args=(batch.id,))

        refused = lambda job_id=batch.id: store.load_job(job_id).delivery_error is not None  # noqa: E731
        wait_for(refused, f"the refusal of the crafted {what}", log=process)
        assert batch_status_sync(batch.id).completed_count == 3  # the job itself ran
        assert "is not in batchline's allowed_callbacks" in (store.load_job(batch.id).delivery_error or "")
        # The refusal is recorded before anything would be sent, and nothing is sent after it.
        assert store.redis.lrange(notified, 0, -1) == []
        assert store.redis.get(f"{store.prefix}bltest:calls:{batch.id}") is None
        assert "delivery refused" in process.output()

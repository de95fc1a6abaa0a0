"""examples/flask_app, driven as its users drive it: Flask's test client posts prompts, the app's own Celery worker
(`celery -A make_celery worker`) runs batchline's tasks and the callback, and the answers land in the app's SQLite
store, once each, even when the worker dies and the callback is delivered again."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from flask import Flask

from batchline import worker
from batchline.emulator import Emulator

from .conftest import RealSetup, make_real_setup
from .example_helpers import (
    FAST,
    FLASK_DIR,
    AppWorker,
    FlaskClient,
    WorkerSlot,
    app_env,
    app_setting_names,
    celery_state_kept,
    expected_texts,
    redeliver_a_saved_chunk,
    run_embedded,
    run_job,
)
from .openai_anthropic_helpers import FAKE_OPENAI_KEY, provider_env
from .waiting import wait_for

pytestmark = pytest.mark.redis


@dataclass
class FlaskSite:
    setup: RealSetup
    env: dict[str, str]
    app: Flask
    client: FlaskClient
    db: Path
    slot: WorkerSlot = field(init=False)

    @property
    def celery(self) -> Celery:
        celery: Celery = self.app.extensions["celery"]
        return celery

    def start_worker(self, log: Path, **env: str) -> AppWorker:
        return AppWorker("make_celery", FLASK_DIR, {**self.env, **env}, log)

    def answers(self, job_id: str) -> dict[str, str]:
        with closing(sqlite3.connect(self.db)) as db:
            rows = db.execute("SELECT custom_id, text FROM answers WHERE job_id = ?", (job_id,)).fetchall()
        assert len(rows) == len({custom_id for custom_id, _ in rows}), "a request was saved twice"
        return dict(rows)


@pytest.fixture(scope="module")
def site(
    redis_url: str, broker: str, emulator_server: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FlaskSite]:
    """The app from its factory in this process, configured from the environment as `flask run` would have it. Its
    worker gets the same environment, plus the provider variables pointing at the emulator."""
    setup = make_real_setup(redis_url, broker, **FAST)
    tmp = tmp_path_factory.mktemp("flask")
    env = app_env(setup, FLASK_RESULTS_DB=str(tmp / "answers.sqlite3"))
    with pytest.MonkeyPatch.context() as patch, celery_state_kept():
        for name in app_setting_names(dict(os.environ)):
            patch.delenv(name)
        for name in app_setting_names(env):
            patch.setenv(name, env[name])
        patch.syspath_prepend(str(FLASK_DIR))
        from answerbox import create_app

        app = create_app({"TESTING": True})
        site = FlaskSite(setup, env, app, FlaskClient(app), tmp / "answers.sqlite3")
        worker_env = {**provider_env(emulator_server), "BATCHLINE_TEST_DELAY": "1"}
        site.slot = WorkerSlot(lambda: site.start_worker(tmp / "worker.log", **worker_env))
        try:
            yield site
        finally:
            site.slot.stop()
    setup.cleanup()


def test_prompts_posted_to_the_view_are_answered_into_the_store(site: FlaskSite) -> None:
    run_job(site, 230)  # three chunks of at most 100 for the callback


def test_celery_is_configured_from_the_flask_config(site: FlaskSite) -> None:
    # The broker is the Flask config's CELERY["broker_url"] (from CELERY_BROKER_URL; no BATCHLINE_BROKER_URL is set),
    # batchline's own settings its `batchline_*` keys, and the API sends through the app's Celery.
    assert "BATCHLINE_BROKER_URL" not in site.env
    assert site.app.config["RESULTS_DB"] == str(site.db)  # FLASK_RESULTS_DB
    settings = site.celery.conf.batchline_settings
    assert site.celery.conf.broker_url == site.setup.settings.broker_url == settings.broker_url
    assert settings.allowed_callbacks == {"answerbox.save_results", "answerbox.save_agent_outputs"}
    assert settings.allowed_agents == {"answerbox.agents"}
    assert worker.current_app() is site.celery
    tasks = site.slot.running().registered_tasks()
    assert "answerbox.save_results" in tasks
    assert {"batchline.submit", "batchline.poll_due", "batchline.fetch", "batchline.deliver"} <= set(tasks)
    assert {"batchline.agent_step", "batchline.agent_flush", "batchline.agent_resume"} <= set(tasks)


def test_an_openai_job_through_the_emulator(
    site: FlaskSite, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.configure(stage_seconds=0.3)
    monkeypatch.setitem(site.app.config, "BATCHLINE_MODEL", "openai:gpt-4o-mini")
    run_job(site, 40)
    assert emulator.stats()["openai"]["batches_created"] == 1
    assert FAKE_OPENAI_KEY not in site.slot.running().output()


def test_bad_input_is_refused_and_an_unknown_job_is_not_found(site: FlaskSite) -> None:
    bad: list[object] = [{"prompts": []}, {"prompts": ["ok", ""]}, {"prompts": "one"}, ["a list"]]
    for body in bad:
        status, answer = site.client.post_json("/jobs", body)
        assert status == 400, body
        assert "prompts" in answer["error"]
    for job_id in (f"batch_{'0' * 32}", "not-a-job"):
        status, _ = site.client.get_json(f"/jobs/{job_id}")
        assert status == 404


def test_a_redelivered_callback_saves_each_answer_once(site: FlaskSite, tmp_path: Path) -> None:
    redeliver_a_saved_chunk(site, tmp_path / "worker.log")


def test_the_embedded_default_with_no_server(emulator: Emulator, tmp_path: Path, clean_env: dict[str, str]) -> None:
    # No broker anywhere: the web process runs batchline's worker itself, and the callback writes to the store.
    final = run_embedded("flask", 30, clean_env, emulator, FLASK_RESULTS_DB=str(tmp_path / "answers.sqlite3"))
    assert final["status"] == "completed"
    assert {a["custom_id"]: a["text"] for a in final["answers"]} == expected_texts(30)
    assert emulator.stats()["openai"]["batches_created"] == 1


def test_the_support_agent_answers_questions_through_batches(
    site: FlaskSite, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POST questions: the agent runs on the app's worker, its tool between two batches, the outputs land in the
    app's store through its callback."""
    emulator.configure(response_template="answer: {tool_results}")
    monkeypatch.setitem(site.app.config, "AGENT_MAX_WAIT", 1)  # a round goes as one batch after a second
    questions = [f"Where is my order? Please check order_status for order {i}." for i in range(6)]
    status, created = site.client.post_json("/agent-runs", {"questions": questions})
    assert status == 202, created
    seen: dict[str, Any] = {}

    def saved() -> bool:
        code, body = site.client.get_json(created["status_url"])
        assert code == 200, body
        seen.update(body)
        return bool(body["status"] == "completed" and len(body["answers"]) == len(questions))

    wait_for(saved, lambda: f"every agent output saved (last seen {seen})", timeout=120, log=site.slot.running())
    assert (seen["succeeded"], seen["failed"], seen["tool_calls"]) == (6, 0, 6)
    for i, answer in enumerate(seen["answers"]):
        assert answer["custom_id"] == f"prompt-{i:05d}"
        assert answer["text"] == f"answer: order example order_id of customer prompt-{i:05d}: shipped"
    assert emulator.stats()["openai"]["batches_created"] == 2  # the tool round, then the answers
    assert "Where is my order" not in site.slot.running().output()
    status, refused = site.client.post_json("/agent-runs", {"questions": []})
    assert status == 400 and "questions" in refused["error"]

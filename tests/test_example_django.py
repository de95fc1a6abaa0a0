"""examples/django_app, driven as its users drive it: Django's test client posts prompts, the project's own Celery
worker (`celery -A project worker`) runs batchline's tasks and the callback, and the answers land in the project's
SQLite database, once each, even when the worker dies and the callback is delivered again."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from celery import Celery

from batchline import worker
from batchline.emulator import Emulator

from .conftest import RealSetup, make_real_setup
from .example_helpers import (
    DJANGO_DIR,
    FAST,
    AppWorker,
    DjangoClient,
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

pytestmark = pytest.mark.redis


@dataclass
class DjangoSite:
    setup: RealSetup
    env: dict[str, str]
    celery: Celery
    client: DjangoClient
    slot: WorkerSlot = field(init=False)

    def start_worker(self, log: Path, **env: str) -> AppWorker:
        return AppWorker("project", DJANGO_DIR, {**self.env, **env}, log)

    def answers(self, job_id: str) -> dict[str, str]:
        from answers.models import Answer

        rows = list(Answer.objects.filter(job_id=job_id).values_list("custom_id", "text"))
        assert len(rows) == len({custom_id for custom_id, _ in rows}), "a request was saved twice"
        return dict(rows)


@pytest.fixture(scope="module")
def site(redis_url: str, emulator_server: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DjangoSite]:
    """The project in this process, as `manage.py runserver` runs it: settings from the environment, SQLite migrated.
    Its worker gets the same environment, plus the provider variables pointing at the emulator.

    Redis only: Django's settings and app registry are set up once per process, so a second site on RabbitMQ in the
    same process would keep the first one's broker (test_example_flask runs the same project shape on both)."""
    setup = make_real_setup(redis_url, **FAST)
    tmp = tmp_path_factory.mktemp("django")
    env = app_env(setup, DJANGO_DB_PATH=str(tmp / "db.sqlite3"), DJANGO_SETTINGS_MODULE="project.settings")
    with pytest.MonkeyPatch.context() as patch, celery_state_kept():
        for name in app_setting_names(dict(os.environ)):
            patch.delenv(name)
        for name in app_setting_names(env):
            patch.setenv(name, env[name])
        patch.syspath_prepend(str(DJANGO_DIR))
        import django
        from django.core.management import call_command
        from django.db import connections

        django.setup()
        call_command("migrate", verbosity=0)
        from project.celery import app

        site = DjangoSite(setup, env, app, DjangoClient())
        worker_env = {**provider_env(emulator_server), "BATCHLINE_TEST_DELAY": "1"}
        site.slot = WorkerSlot(lambda: site.start_worker(tmp / "worker.log", **worker_env))
        try:
            yield site
        finally:
            site.slot.stop()
            connections.close_all()
    setup.cleanup()


def test_prompts_posted_to_the_view_are_answered_into_the_database(site: DjangoSite) -> None:
    run_job(site, 230)  # three chunks of at most 100 for the callback


def test_the_celery_app_is_configured_the_django_way(site: DjangoSite) -> None:
    # The broker is Celery's CELERY_BROKER_URL (no BATCHLINE_BROKER_URL is set), batchline's own settings come from
    # CELERY_BATCHLINE_* in settings.py, and the API sends through the project's app.
    assert "BATCHLINE_BROKER_URL" not in site.env
    settings = site.celery.conf.batchline_settings
    assert site.celery.conf.broker_url == site.setup.settings.broker_url == settings.broker_url
    assert settings.store_url == site.setup.settings.store_url
    assert settings.allowed_callbacks == {"answers.save_results"}
    assert worker.current_app() is site.celery
    # Autodiscovery finds answers.tasks beside batchline.tasks: one worker runs both, nothing collides.
    tasks = site.slot.running().registered_tasks()
    assert "answers.save_results" in tasks
    assert {"batchline.submit", "batchline.poll_due", "batchline.fetch", "batchline.deliver"} <= set(tasks)


def test_an_openai_job_through_the_emulator(site: DjangoSite, emulator: Emulator) -> None:
    from django.test import override_settings

    emulator.configure(stage_seconds=0.3)
    with override_settings(BATCHLINE_EXAMPLE_MODEL="openai:gpt-4o-mini"):
        run_job(site, 40)
    assert emulator.stats()["openai"]["batches_created"] == 1
    assert FAKE_OPENAI_KEY not in site.slot.running().output()


def test_bad_input_is_refused_and_an_unknown_job_is_not_found(site: DjangoSite) -> None:
    bad: list[object] = [{"prompts": []}, {"prompts": ["ok", ""]}, {"prompts": "one"}, ["a list"]]
    for body in bad:
        status, answer = site.client.post_json("/jobs/", body)
        assert status == 400, body
        assert "prompts" in answer["error"]
    status, _ = site.client.get_json(f"/jobs/batch_{'0' * 32}/")
    assert status == 404


def test_a_redelivered_callback_saves_each_answer_once(site: DjangoSite, tmp_path: Path) -> None:
    redeliver_a_saved_chunk(site, tmp_path / "worker.log")


def test_the_embedded_default_with_no_server(emulator: Emulator, tmp_path: Path, clean_env: dict[str, str]) -> None:
    # No broker anywhere: the web process runs batchline's worker itself, and the callback writes to SQLite.
    final = run_embedded("django", 30, clean_env, emulator, DJANGO_DB_PATH=str(tmp_path / "db.sqlite3"))
    assert final["status"] == "completed"
    assert {a["custom_id"]: a["text"] for a in final["answers"]} == expected_texts(30)
    assert emulator.stats()["openai"]["batches_created"] == 1

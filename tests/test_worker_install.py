"""`worker.install` puts batchline on a project's Celery app; `configure` and `use_app`, its deprecated halves, still
work for one release."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery

from batchline import worker
from batchline.config import Settings

SETTINGS = {"BATCHLINE_BROKER_URL": "redis://h/0", "BATCHLINE_QUEUE": "q"}


@pytest.fixture(autouse=True)
def no_current_app() -> Iterator[None]:
    yield
    worker._current = None


def test_install_configures_the_app_and_sends_the_api_through_it() -> None:
    app = Celery("project", set_as_current=False)
    settings = worker.install(app, Settings.load({}, SETTINGS))
    assert worker.current_app() is app
    assert app.conf.batchline_settings is settings and settings.queue == "q"
    assert app.conf.broker_url == "redis://h/0" and "batchline.tasks" in app.conf.include
    assert app.conf.task_routes == {"batchline.*": {"queue": "q"}}


def test_configure_and_use_app_still_do_what_install_does() -> None:
    app = Celery("project", set_as_current=False)
    settings = worker.configure(app, Settings.load({}, SETTINGS))
    worker.use_app(app)
    assert worker.current_app() is app
    assert app.conf.batchline_settings is settings and app.conf.broker_url == "redis://h/0"
    assert app.conf.task_routes == {"batchline.*": {"queue": "q"}}

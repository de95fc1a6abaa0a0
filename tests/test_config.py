"""Settings come from the Celery app's config first, then the environment."""

from __future__ import annotations

import pytest
from celery import Celery

from batchline import worker
from batchline.config import Settings


def test_the_environment_configures_a_worker() -> None:
    settings = Settings.load({}, {"BATCHLINE_BROKER_URL": "redis://h:1/2", "BATCHLINE_TTL_SECONDS": "172800"})
    assert settings.broker_url == "redis://h:1/2" and settings.ttl_seconds == 172800
    assert settings.store_url == "redis://h:1/2"  # a Redis broker doubles as the store unless one is named
    assert not settings.embedded


def test_the_app_config_wins_over_the_environment() -> None:
    conf = {"batchline_redis_url": "redis://store/0", "batchline_allowed_callbacks": ["app.tasks.save"]}
    settings = Settings.load(conf, {"BATCHLINE_REDIS_URL": "redis://env/0", "BATCHLINE_QUEUE": "jobs"})
    assert settings.store_url == "redis://store/0"
    assert settings.queue == "jobs"
    assert Settings.load({}, {}).queue is None  # unnamed: batchline's own app uses "batchline"
    assert worker.app.conf.task_default_queue == "batchline"
    assert settings.allowed_callbacks == frozenset({"app.tasks.save"})


def test_nothing_configured_is_the_embedded_default() -> None:
    settings = Settings.load({}, {})
    assert settings.embedded and settings.store_url is None


def test_bad_values_are_named() -> None:
    with pytest.raises(ValueError, match="BATCHLINE_TTL_SECONDS"):
        Settings.load({}, {"BATCHLINE_TTL_SECONDS": "a week"})
    with pytest.raises(ValueError, match="BATCHLINE_VISIBILITY_TIMEOUT"):
        Settings.load({}, {"BATCHLINE_MAX_POLL_INTERVAL": "7200", "BATCHLINE_VISIBILITY_TIMEOUT": "3600"})


def test_configure_applies_queue_events_and_visibility_to_an_app() -> None:
    app = Celery("project", set_as_current=False)
    app.conf.beat_schedule = {"project.nightly": {"task": "project.nightly", "schedule": 86400}}
    settings = worker.configure(app, Settings.load({}, {"BATCHLINE_BROKER_URL": "redis://h/0", "BATCHLINE_QUEUE": "q"}))
    assert app.conf.task_default_queue == "celery"  # the project's own tasks stay where they were
    assert app.amqp.router.route({}, "batchline.poll")["queue"].name == "q"
    assert app.amqp.router.route({}, "project.save")["queue"].name == "celery"
    assert "project.nightly" in app.conf.beat_schedule
    assert app.conf.worker_send_task_events and app.conf.task_send_sent_event
    assert app.conf.broker_transport_options["visibility_timeout"] == settings.visibility_timeout
    assert settings.max_poll_interval < settings.visibility_timeout
    assert "batchline.sweep" in app.conf.beat_schedule
    assert "batchline.tasks" in app.conf.include

"""What an `amqp://` broker changes in an app's Celery config (no broker needed): batchline's queue is a quorum queue
on a topic exchange, so Celery's native delayed delivery holds countdowns in RabbitMQ (see batchline/rabbitmq.py)."""

from __future__ import annotations

import logging

import pytest
from celery import Celery

from batchline import worker
from batchline.config import Settings
from batchline.errors import SettingsError

AMQP = "amqp://guest:guest@rabbit:5672/prod"


def rabbit_settings(**env: str) -> Settings:
    return Settings.load({}, {"BATCHLINE_BROKER_URL": AMQP, "BATCHLINE_REDIS_URL": "redis://store/0", **env})


def test_a_rabbitmq_broker_needs_a_store_named_apart() -> None:
    with pytest.raises(SettingsError, match="BATCHLINE_REDIS_URL must name the store's Redis"):
        Settings.load({}, {"BATCHLINE_BROKER_URL": AMQP})


def test_batchlines_own_app_declares_quorum_queues_on_topic_exchanges() -> None:
    app = Celery("own", set_as_current=False)
    worker.configure(app, rabbit_settings(), own=True)
    queue = app.amqp.router.route({}, "batchline.poll")["queue"]
    assert queue.name == "batchline" and queue.exchange.type == "topic"
    assert queue.queue_arguments == {"x-queue-type": "quorum"}


def test_a_projects_app_gets_batchlines_queue_declared_and_keeps_its_own() -> None:
    app = Celery("project", set_as_current=False)
    worker.configure(app, rabbit_settings(BATCHLINE_QUEUE="jobs"))
    queue = app.amqp.router.route({}, "batchline.poll")["queue"]
    assert (queue.name, queue.exchange.type, queue.queue_arguments) == ("jobs", "topic", {"x-queue-type": "quorum"})
    own = app.amqp.router.route({}, "project.save")["queue"]
    assert own.name == "celery" and own.exchange.type == "direct" and not own.queue_arguments


def test_a_projects_shared_classic_queue_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    app = Celery("project", set_as_current=False)
    with caplog.at_level(logging.WARNING, logger="batchline.rabbitmq"):
        worker.configure(app, rabbit_settings())
    assert "consumer_timeout" in caplog.text


def test_a_delay_under_a_second_is_sent_as_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # Native delayed delivery routes whole seconds and raises for a countdown that rounds to zero.
    sent: list[object] = []

    def record(
        self: Celery,
        name: str,
        args: object = None,
        kwargs: object = None,
        countdown: object = None,
        eta: object = None,
        *rest: object,
        **options: object,
    ) -> None:
        sent.append(countdown)

    monkeypatch.setattr(Celery, "send_task", record)
    app = Celery("own", set_as_current=False)
    worker.configure(app, rabbit_settings(), own=True)
    app.send_task("batchline.poll", ("job", 0), countdown=0.3)
    app.send_task("batchline.poll", ("job", 0), countdown=12.5)
    app.send_task("batchline.submit", ("job",))
    assert sent == [1, 12.5, None]

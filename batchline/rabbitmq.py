"""RabbitMQ as the broker: waiting polls travel through the broker's delay queues instead of a worker's memory.

A poll waits up to `max_poll_interval` (30 minutes by default) as a countdown. On Celery's classic queues a worker takes
such a message at once and holds it unacknowledged until its time, and RabbitMQ closes the channel of a delivery left
unacknowledged past `consumer_timeout` (30 minutes by default): every message that channel held comes back, and the
long waits never end on time. With quorum queues on topic exchanges Celery (5.5+) sends a countdown to RabbitMQ's own
delay queues (`celery_delayed_0..27`, declared by the worker), so the message reaches the worker only when it is due
and no delivery is held for longer than a moment.

batchline's own app declares its queue so (`task_default_queue_type`, `task_default_exchange_type`). A project's app
keeps its own defaults; batchline's queue, when `queue` names one, is made the same way, and a project whose tasks
share its default classic queue is warned that long polls will be held.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from celery import Celery
from celery.signals import celeryd_init
from kombu import Exchange, Queue

log = logging.getLogger("batchline.rabbitmq")

AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")


def is_rabbitmq(broker_url: str) -> bool:
    return broker_url.startswith(AMQP_SCHEMES)


def delayed_queue(name: str) -> Queue:
    """A queue the broker delays countdowns for: quorum, on a topic exchange of its own name (Celery's native delayed
    delivery skips direct exchanges)."""
    return Queue(name, Exchange(name, type="topic"), routing_key=name, queue_arguments={"x-queue-type": "quorum"})


def configure_rabbitmq(app: Celery, queue: str | None, *, own: bool) -> Queue | None:
    """RabbitMQ's options on `app`; the queue batchline's tasks are routed to on a project's app, when one is named."""
    conf = app.conf
    # Quorum queues take no global prefetch limit; Celery sets a per-consumer one when it finds one.
    conf.worker_detect_quorum_queues = True
    _whole_second_delays(app)
    if own:
        conf.update(task_default_queue_type="quorum", task_default_exchange_type="topic")
        return None
    if queue is None:
        if conf.task_default_queue_type != "quorum" or conf.task_default_exchange_type == "direct":
            log.warning(
                "batchline on RabbitMQ: its tasks share this app's default queue, a classic one or on a direct "
                "exchange, where a worker holds each waiting poll unacknowledged; past RabbitMQ's consumer_timeout "
                "(30 minutes) the broker closes the channel. Name BATCHLINE_QUEUE (batchline makes it a quorum queue "
                "with native delayed delivery) or set task_default_queue_type='quorum' and "
                "task_default_exchange_type='topic'."
            )
        return None
    declared = delayed_queue(queue)

    def add_queue(sender: object = None, instance: Any = None, **_: object) -> None:
        # Before the worker reads `-Q`: it must consume the queue as declared here, not as a classic one.
        if instance is not None and instance.app is app:
            app.amqp.queues.add(declared)

    celeryd_init.connect(add_queue, weak=False)
    return declared


def _whole_second_delays(app: Celery) -> None:
    """Send a delay under a second as one second.

    Native delayed delivery routes a countdown by its whole seconds and refuses one that rounds to zero (kombu's
    `calculate_routing_key` raises ValueError for `int(0.3)`), so a poll due in 0.3 s would be rejected, not sent.
    """
    if getattr(app.send_task, "_batchline_whole_seconds", False):
        return
    send = app.send_task

    def send_task(
        name: str,
        args: Any = None,
        kwargs: Any = None,
        countdown: float | None = None,
        eta: Any = None,
        *rest: Any,
        **options: Any,
    ) -> Any:
        if countdown is not None and 0 < countdown < 1:
            countdown = 1
        if isinstance(eta, datetime) and eta.tzinfo is not None and 0 < (eta - app.now()).total_seconds() < 1:
            eta, countdown = None, 1
        return send(name, args, kwargs, countdown, eta, *rest, **options)

    send_task._batchline_whole_seconds = True  # type: ignore[attr-defined]
    app.send_task = send_task  # type: ignore[method-assign]

"""The broker transport batchline installs for Redis: kombu's, sharing one Redis client per channel."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery
from kombu import Connection, Exchange, Queue

from batchline import transport, worker

from .conftest import RealSetup, make_real_setup

pytestmark = pytest.mark.redis


@pytest.fixture
def setup(redis_url: str) -> Iterator[RealSetup]:
    made = make_real_setup(redis_url)
    yield made
    made.cleanup()


def test_a_configured_app_uses_it_and_keeps_the_redis_scheme_flower_reads(setup: RealSetup) -> None:
    app = Celery("t", set_as_current=False)
    worker.configure(app, setup.settings)
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, transport.Transport)
        assert connection.as_uri(include_password=True).startswith("redis://")


def test_one_client_serves_a_channel_and_follows_a_new_pool(setup: RealSetup) -> None:
    transport.use_shared_client_transport()
    # Under the setup's Celery key prefix, so that its cleanup removes the exchange's bindings too.
    options = {"global_keyprefix": setup.settings.celery_key_prefix}
    with Connection(setup.settings.broker_url, transport_options=options) as connection:
        assert isinstance(connection.transport, transport.Transport)
        channel = connection.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        channel._pool = None  # what kombu does when it reconnects
        with channel.conn_or_acquire() as third:
            assert third is not first
            assert third.connection_pool is channel.pool
            assert third.ping()


def test_messages_go_through_it(setup: RealSetup) -> None:
    transport.use_shared_client_transport()
    queue = Queue(f"{setup.settings.queue}-transport", Exchange(f"{setup.settings.queue}-transport"), "k")
    received: list[object] = []
    # Under the setup's Celery key prefix, so that its cleanup removes the exchange's bindings too.
    options = {"global_keyprefix": setup.settings.celery_key_prefix}
    with Connection(setup.settings.broker_url, transport_options=options) as connection:
        assert isinstance(connection.transport, transport.Transport)
        with connection.Producer() as producer:
            for n in range(3):
                producer.publish({"n": n}, exchange=queue.exchange, routing_key="k", declare=[queue])
        with connection.Consumer(queue, callbacks=[lambda body, message: (received.append(body), message.ack())]):
            while len(received) < 3:
                connection.drain_events(timeout=5)
    assert received == [{"n": 0}, {"n": 1}, {"n": 2}]

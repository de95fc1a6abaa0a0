"""kombu's Redis transport with two changes: one Redis client per channel, and a worker that rides out a Redis restart.

One client per channel: kombu builds a new `redis.Redis` for every publish, task event, delivery record and
acknowledgement (`Channel.conn_or_acquire`). With redis-py 8 building one copies its table of response callbacks:
measured here, 7% of a worker's CPU on a poll. A client holds no connection of its own (each command borrows one from
the channel's pool), so one per pool serves every such command the same way, from any thread.

A Redis restart: when the worker loses the broker, Celery closes the connection twice (`collect`, then `close`), and
the first lets go of the transport's `client` (the URL's host and port). The channel's second close then restores its
unacknowledged messages, needs a new pool, reads the host from that `client` and dies with
`AttributeError: 'NoneType' object has no attribute 'hostname'`, which Celery calls unrecoverable: the worker exits.
The same happens to an acknowledgement a task sends after the loss. Upstream: celery/kombu#970 (restore_unacked on
close, the transport's client gone) and celery/kombu#582 (the same AttributeError on a channel's close); kombu 5.7
still does it. Here a channel keeps the address it was opened with, so those late commands reach the restarted Redis
(or fail with a connection error, which Celery handles); and the messages a closing channel could not restore because
Redis was still down are restored by the next channel this process opens, rather than an hour later by the
visibility timeout. Restoring is idempotent (kombu moves a message back only while it is still in the unacked hash),
so a message restored twice, or already acknowledged, is delivered once.

It is installed under kombu's own `redis` and `rediss` names rather than a name of its own: the broker URL keeps its
scheme, which Flower reads to show the queues.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import redis
from kombu import transport as kombu_transport
from kombu.transport import redis as kombu_redis

_KOMBU_REDIS = "kombu.transport.redis:Transport"

log = logging.getLogger("batchline.transport")

_unrestored: dict[tuple[Any, ...], set[str]] = {}
"""Delivery tags a closing channel could not give back to their queues, by Redis address and unacked hash."""
_unrestored_lock = threading.Lock()


class QoS(kombu_redis.QoS):
    def restore_unacked(self, client: Any = None) -> None:
        channel: Any = self.channel  # kombu's stubs lack most of what is used here
        delivered: Any = self._delivered
        try:
            super().restore_unacked(client)
        except channel.connection_errors as error:
            # Redis is down: the messages are still in its unacked hash. Keep their tags for the next channel.
            tags = set(delivered)
            delivered.clear()
            with _unrestored_lock:
                _unrestored.setdefault(channel.restore_key(), set()).update(tags)
            log.warning(
                "Redis unreachable (%s): %d unacknowledged message(s) go back on reconnection",
                error,
                len(tags),
            )


class Channel(kombu_redis.Channel):
    QoS = QoS
    _shared_client: Any = None
    _known_connparams: dict[str, Any] | None = None
    _address: tuple[Any, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # pings Redis: it is reachable now
        self._restore_unrestored()

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool  # a reconnect makes a new pool: the shared client follows it
        if self._shared_client is None or self._shared_client.connection_pool is not pool:
            self._shared_client = self._create_client()  # type: ignore[attr-defined]  # kombu stubs lack it
        yield self._shared_client

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            # Celery let go of the transport while this channel still restores or acknowledges messages
            # (celery/kombu#970): connect to the address the channel was opened with.
            if asynchronous or self._known_connparams is None:
                raise redis.ConnectionError("the broker connection was closed")
            return dict(self._known_connparams)
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]  # not in stubs
        self._address = tuple(params.get(k) for k in ("host", "port", "path", "db"))
        if not asynchronous:
            self._known_connparams = dict(params)
        return params

    def restore_key(self) -> tuple[Any, ...]:
        """Where this channel's unacknowledged messages are kept: the Redis address and the unacked hash."""
        return (*self._address, self.unacked_key)

    def _restore_unrestored(self) -> None:
        key = self.restore_key()
        with _unrestored_lock:
            tags = _unrestored.pop(key, set())
        if not tags:
            return
        qos: Any = self.qos
        errors: Any = cast(Any, self).connection_errors
        left: set[str] = set()
        for tag in tags:
            try:
                qos.restore_by_tag(tag)
            except errors:
                left.add(tag)
        if left:
            with _unrestored_lock:
                _unrestored.setdefault(key, set()).update(left)
        log.warning("restored %d unacknowledged message(s) after a broker reconnection", len(tags) - len(left))


class Transport(kombu_redis.Transport):
    Channel = Channel


def use_shared_client_transport() -> None:
    """Serve `redis://` and `rediss://` brokers with this transport, unless something else already took the names."""
    for scheme in ("redis", "rediss"):
        if kombu_transport.TRANSPORT_ALIASES.get(scheme) == _KOMBU_REDIS:
            kombu_transport.TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"

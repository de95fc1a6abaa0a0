"""kombu's Redis transport, with one Redis client per channel for its short commands instead of one per command.

kombu builds a new `redis.Redis` for every publish, task event, delivery record and acknowledgement
(`Channel.conn_or_acquire`). With redis-py 8 building one copies its table of response callbacks: measured here, 7% of
a worker's CPU on a poll. A client holds no connection of its own (each command borrows one from the channel's pool),
so one per pool serves every such command the same way, from any thread.

It is installed under kombu's own `redis` and `rediss` names rather than a name of its own: the broker URL keeps its
scheme, which Flower reads to show the queues.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu import transport as kombu_transport
from kombu.transport import redis as kombu_redis

_KOMBU_REDIS = "kombu.transport.redis:Transport"


class Channel(kombu_redis.Channel):
    _shared_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool  # a reconnect makes a new pool: the shared client follows it
        if self._shared_client is None or self._shared_client.connection_pool is not pool:
            self._shared_client = self._create_client()  # type: ignore[attr-defined]  # kombu stubs lack it
        yield self._shared_client


class Transport(kombu_redis.Transport):
    Channel = Channel


def use_shared_client_transport() -> None:
    """Serve `redis://` and `rediss://` brokers with this transport, unless something else already took the names."""
    for scheme in ("redis", "rediss"):
        if kombu_transport.TRANSPORT_ALIASES.get(scheme) == _KOMBU_REDIS:
            kombu_transport.TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"

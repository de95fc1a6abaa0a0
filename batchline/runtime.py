"""The per-process pieces a Celery app needs: its settings, the store, and one adapter per model."""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass, field

import redis
from celery import Celery

from .config import Settings
from .due_polls import DuePolls
from .providers import Provider, ProviderContext, get_provider, provider_class
from .providers.endpoints import Endpoint
from .redis_urls import is_cluster_url, store_client
from .store import Store
from .store_cluster import ClusterStore

_lock = threading.Lock()
_runtimes: dict[int, Runtime] = {}
_embedded_redis: redis.Redis | None = None


def _fresh_lock() -> None:
    # A worker's main process runs a thread (the poll tick's check) that may hold the lock when the pool forks a
    # new child: the child starts with a lock no one will ever release.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock)


@dataclass
class Runtime:
    settings: Settings
    store: Store
    _providers: dict[tuple[str, str], Provider] = field(default_factory=dict)
    _providers_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @functools.cached_property
    def due(self) -> DuePolls:
        """The parts waiting for their next poll (see `due_polls`)."""
        return DuePolls(self.store.redis, self.store.prefix)

    def provider(self, model: str, endpoint: str = "") -> Provider:
        """The worker-side adapter for `model`, made once per process and endpoint (it holds the HTTP client).

        `endpoint` is a job's own (`JobRecord.endpoint`, from a `Model` instance): its adapter calls that base URL
        instead of the environment's, once the worker trusts it (see `providers.endpoints`).
        """
        key = (model, endpoint)
        adapter = self._providers.get(key)
        if adapter is not None:
            return adapter
        with self._providers_lock:  # a group's polls run on threads: one adapter (and HTTP client) per key still
            adapter = self._providers.get(key)
            if adapter is not None:
                return adapter
            context = ProviderContext(self.settings, self.store.scratch(provider_class(model).name))
            adapter = get_provider(model, context)
            if (own := Endpoint.from_json(endpoint)) is not None:
                adapter.use_endpoint(own)
            self._providers[key] = adapter
        return adapter


def runtime_for(app: Celery) -> Runtime:
    """The runtime of `app`, built from its configuration on first use."""
    with _lock:
        runtime = _runtimes.get(id(app))
        if runtime is None:
            settings: Settings = app.conf.get("batchline_settings") or Settings.load(app.conf)
            store = make_store(settings)
            runtime = _runtimes[id(app)] = Runtime(settings, store)
        return runtime


def make_store(settings: Settings) -> Store:
    """The store of `settings`: a `ClusterStore` (hash-tagged keys) on a Redis Cluster, else today's key names."""
    client = redis_client(settings)
    url = settings.store_url
    if url is not None and is_cluster_url(url, settings.redis_cluster):
        return ClusterStore(client, settings.key_prefix, settings.ttl_seconds)
    return Store(client, settings.key_prefix, settings.ttl_seconds)


def redis_client(settings: Settings) -> redis.Redis:
    """The store's client: one Redis, a cluster or a Sentinel master, as its URL says (see `redis_urls`)."""
    url = settings.store_url
    if url is not None:
        return store_client(url, settings.redis_cluster)
    if not settings.embedded:
        raise ValueError("BATCHLINE_REDIS_URL must name the store's Redis when the broker is not a Redis one.")
    return embedded_redis()


def embedded_redis() -> redis.Redis:
    """The in-process Redis of the embedded default: one per process, shared by the caller and the worker thread."""
    global _embedded_redis
    if _embedded_redis is None:
        import fakeredis

        _embedded_redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    return _embedded_redis

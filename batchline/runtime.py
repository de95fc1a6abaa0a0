"""The per-process pieces a Celery app needs: its settings, the store, and one adapter per model."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import redis
from celery import Celery

from .config import Settings
from .providers import Provider, ProviderContext, get_provider, provider_class
from .providers.endpoints import Endpoint
from .store import Store

_lock = threading.Lock()
_runtimes: dict[int, Runtime] = {}
_embedded_redis: redis.Redis | None = None


@dataclass
class Runtime:
    settings: Settings
    store: Store
    _providers: dict[tuple[str, str], Provider] = field(default_factory=dict)

    def provider(self, model: str, endpoint: str = "") -> Provider:
        """The worker-side adapter for `model`, made once per process and endpoint (it holds the HTTP client).

        `endpoint` is a job's own (`JobRecord.endpoint`, from a `Model` instance): its adapter calls that base URL
        instead of the environment's, once the worker trusts it (see `providers.endpoints`).
        """
        key = (model, endpoint)
        adapter = self._providers.get(key)
        if adapter is None:
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
            store = Store(redis_client(settings), settings.key_prefix, settings.ttl_seconds)
            runtime = _runtimes[id(app)] = Runtime(settings, store)
        return runtime


def redis_client(settings: Settings) -> redis.Redis:
    url = settings.store_url
    if url is not None:
        return redis.Redis.from_url(url, health_check_interval=30, socket_keepalive=True)
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

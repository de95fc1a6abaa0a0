"""Settings, read from a Celery app's configuration first and the environment second.

An app configures batchline through its Celery config (`batchline_redis_url`, ...), the way Django and Flask
projects configure Celery; a plain worker reads `BATCHLINE_REDIS_URL` and friends from the environment. Provider keys
are never settings: the adapters read them from the worker's environment, under the names the providers' SDKs use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

DAY = 24 * 3600


@dataclass(frozen=True)
class Settings:
    broker_url: str | None = None
    """The Celery broker. Unset: the embedded default (an in-process broker, worker and Redis)."""
    redis_url: str | None = None
    """The store. Unset: the broker's URL when that is a Redis one, else the embedded in-process Redis."""
    result_backend: str | None = None
    key_prefix: str = "batchline:"
    queue: str | None = None
    """The queue batchline's tasks go to: `batchline` on batchline's own app; a project's app routes them there only
    when it is named, else they share the project's default queue."""
    ttl_seconds: int = 30 * DAY
    """How long a job's keys live after their last write; results stay readable this long."""
    max_poll_interval: float = 1800.0
    """The cap on the growing interval between two polls of a provider batch."""
    visibility_timeout: int = 4 * 3600
    """The Redis broker's redelivery timeout; kept above `max_poll_interval` so a waiting poll is never redelivered."""
    sweep_interval: float = 300.0
    allowed_callbacks: frozenset[str] = field(default_factory=frozenset)
    """Task names a job may name as its callback or on_complete task; any other name is refused."""
    trusted_result_hosts: frozenset[str] = field(default_factory=frozenset)
    """Origins (`https://files.example.com:443`, comma-separated) besides each provider's base URL that URLs the
    provider hands back (results, uploads) may point to. The API key goes to no other origin."""
    cleanup_files: bool = True
    """Delete a batch's input and result files at the provider once its results are stored."""
    claim_timeout: float = 600.0
    """How long a part's create may take before another worker may look for, or make, its provider batch."""
    test_delay: float = 0.0
    """Seconds the built-in `test` provider takes to finish a batch."""
    test_create_seconds: float = 0.0
    """Seconds the `test` provider takes to answer a create, after the batch exists (a slow response)."""
    test_result_seconds: float = 0.0
    """Seconds the `test` provider takes to send each result line (a slow download)."""

    @property
    def embedded(self) -> bool:
        return self.broker_url is None

    @property
    def store_url(self) -> str | None:
        if self.redis_url:
            return self.redis_url
        if self.broker_url and self.broker_url.startswith(("redis://", "rediss://", "unix://")):
            return self.broker_url
        return None

    @classmethod
    def load(cls, conf: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        """Each setting from `conf["batchline_<name>"]`, else `$BATCHLINE_<NAME>`, else its default."""
        conf = conf or {}
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = conf.get(f"batchline_{f.name}")
            if raw is None:
                raw = environ.get(f"BATCHLINE_{f.name.upper()}") or None
            if raw is not None:
                values[f.name] = _convert(f.name, f.type, raw)
        settings = cls(**values)
        if settings.max_poll_interval >= settings.visibility_timeout:
            raise ValueError(
                f"max_poll_interval ({settings.max_poll_interval:g}s) must stay below the broker's "
                f"visibility_timeout ({settings.visibility_timeout}s), or waiting polls get redelivered."
            )
        return settings


def _convert(name: str, kind: object, raw: Any) -> Any:
    kind = str(kind)
    try:
        if "frozenset" in kind:
            items = raw.split(",") if isinstance(raw, str) else raw
            return frozenset(item.strip() for item in items if item.strip())
        if kind.startswith("bool"):
            return raw if isinstance(raw, bool) else str(raw).strip().lower() in ("1", "true", "yes", "on")
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"batchline setting {name!r} has an invalid value {raw!r}") from None
    return str(raw)

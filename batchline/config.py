"""Settings, read from a Celery app's configuration first and the environment second.

An app configures batchline through its Celery config (`batchline_redis_url`, ...), the way Django and Flask
projects configure Celery; a plain worker reads `BATCHLINE_REDIS_URL` and friends from the environment. Provider keys
are never settings: the adapters read them from the worker's environment, under the names the providers' SDKs use.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from .errors import SettingsError
from .redis_urls import SCHEMES as STORE_SCHEMES
from .trusted_urls import BASE_URL_VARIABLES, scoped
from .validation import DAY, plain_number

OVERDUE_GRACE = 3600.0
"""How long a batch past `batch_age_limit` is polled after its cancel is asked, for the cancel to end it with what it
ran (see `pipeline/overdue.py`)."""
KEYS_MARGIN = 3600.0
"""Beyond that grace and a poll's wait, how long before its keys expire (`ttl_seconds` from the job's create) a job's
batches are overdue whatever their age: the keys must outlive the wait, the cancel's grace and the fetch."""


@dataclass(frozen=True)
class Settings:
    # The URLs may hold passwords and stay out of the repr: the settings live in the Celery config, which
    # `celery inspect conf` and Flower's config page show (Celery censors only the keys it knows).
    broker_url: str | None = field(default=None, repr=False)
    """The Celery broker. Unset: the embedded default (an in-process broker, worker and Redis)."""
    redis_url: str | None = field(default=None, repr=False)
    """The store. Unset: the broker's URL when that is a Redis one, else the embedded in-process Redis. Also
    `redis+cluster://host:port[,host:port]` (a Redis Cluster) and `redis+sentinel://host:port[,...]/service[/db]`
    (the master Sentinel names), each with a TLS form `rediss+...://`: see `redis_urls`."""
    redis_cluster: bool = False
    """The store's `redis://` or `rediss://` URL names one node of a Redis Cluster (as `redis+cluster://` does)."""
    result_backend: str | None = field(default=None, repr=False)
    key_prefix: str = "batchline:"
    celery_key_prefix: str = ""
    """Put before every key Celery's Redis broker and result backend write (their `global_keyprefix`), so several
    deployments, or test runs, share one Redis database and each can find its own keys. Empty: Celery's own names."""
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
    allowed_agents: frozenset[str] = field(default_factory=frozenset)
    """Agents (`module:attribute`) or whole modules a `batchline.agents` job may name; the workers import them."""
    agent_lease: float = 300.0
    """How long a worker holds an agent run while it takes one round (its tools, its next request); a run whose
    worker died goes on elsewhere after this."""
    trusted_result_hosts: frozenset[str] = field(default_factory=frozenset)
    """Origins (`https://files.example.com:443`, comma-separated) besides each provider's base URL that URLs the
    provider hands back (results, uploads) may point to. The API key goes to no other origin."""
    trusted_base_urls: frozenset[str] = field(default_factory=frozenset)
    """Base URLs (comma-separated; their origins count) a pydantic-ai `Model` instance's provider may point a job at,
    besides each provider's official one and the workers' own `OPENAI_BASE_URL`-style variables: the workers send
    their API key there."""
    cleanup_files: bool = True
    """Delete a batch's input and result files at the provider once its results are stored."""
    batch_age_limit: float = 3 * DAY
    """How long a provider batch may go on running after its create before batchline stops waiting: it is cancelled
    at the provider and its part ends failed. Above every provider's own window (24 hours, Gemini's 48), so only a
    provider that broke its word meets it; without it, such a batch was polled until its job's keys expired. A job's
    batches are overdue, too, two hours and a poll's wait before its keys expire (`ttl_seconds` from its create)."""
    claim_timeout: float = 600.0
    """How long a part's create may take before another worker may look for, or make, its provider batch."""
    test_delay: float = 0.0
    """Seconds the built-in `test` provider takes to finish a batch."""
    test_create_seconds: float = 0.0
    """Seconds the `test` provider takes to answer a create, after the batch exists (a slow response)."""
    test_result_seconds: float = 0.0
    """Seconds the `test` provider takes to send each result line (a slow download)."""
    instrument: bool = False
    """Trace every step with OpenTelemetry and record its metrics (needs `pip install batchline[otel]`)."""
    cache_key_prefix: str = "cache:"
    """Put after `key_prefix` before every key of the response cache (jobs created with `cache=True`): a tenant with a
    prefix of its own never shares answers with another."""
    cache_ttl_seconds: int = 7 * DAY
    """How long an answer stays in the response cache after the provider gave it."""

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
        """Each setting from `conf["batchline_<name>"]`, else `$BATCHLINE_<NAME>`, else its default.

        Every value is checked here (see `_RULES`): a bad one raises SettingsError naming where it came from and what
        it takes, before a worker, the CLI or the API starts on it.
        """
        conf = conf or {}
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for f in fields(cls):
            raw = conf.get(f"batchline_{f.name}")
            source = f"batchline_{f.name} (Celery config)"
            if raw is None:
                raw = environ.get(f"BATCHLINE_{f.name.upper()}") or None
                source = f"BATCHLINE_{f.name.upper()}"
            sources[f.name] = source
            if raw is not None:
                values[f.name] = _convert(source, f.name, f.type, raw)
        settings = cls(**values)
        _check_together(settings, sources)
        return settings


def _convert(source: str, name: str, kind: object, raw: Any) -> Any:
    kind = str(kind)
    rule = _RULES.get(name)
    if "frozenset" in kind:
        items = raw.split(",") if isinstance(raw, str) else raw
        try:
            return frozenset(item.strip() for item in items if item.strip())
        except (TypeError, AttributeError):
            raise SettingsError(f"{source} must be a comma-separated list of names, not {raw!r}.") from None
    if kind.startswith("bool"):
        return _boolean(source, raw)
    if kind.startswith(("int", "float")):
        return _number(source, raw, rule or _Rule(), integer=kind.startswith("int"))
    value = str(raw)
    if rule is not None and rule.check is not None and not rule.check(value):
        raise SettingsError(f"{source} {rule.says}{'' if rule.secret else f', not {value!r}'}.")
    return value


@dataclass(frozen=True)
class _Rule:
    """What one setting takes: numbers within `[low, high]` (`low_open`: above `low`), text passing `check`."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    unit: str = ""
    why: str = ""
    check: Callable[[str], bool] | None = None
    says: str = ""
    secret: bool = False
    """The value is not repeated in the error: a URL may hold a password."""


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_BROKER_URL = (
    "must be a URL, scheme://[user:password@]host[:port][/path], e.g. redis://localhost:6379/0 or amqp://host//"
)
_REDIS_URL = (
    "must be a Redis URL, redis://[:password@]host[:port][/db] (or rediss://, unix://, redis+cluster://host:port,"
    "host:port, redis+sentinel://host:port/service), e.g. redis://localhost:6379/0"
)


def _is_name(value: str) -> bool:
    return bool(value) and not any(c.isspace() for c in value)


_RULES: dict[str, _Rule] = {
    "broker_url": _Rule(check=lambda v: bool(_URL.match(v)), says=_BROKER_URL, secret=True),
    "redis_url": _Rule(check=lambda v: v.startswith(STORE_SCHEMES), says=_REDIS_URL, secret=True),
    "result_backend": _Rule(check=lambda v: bool(_URL.match(v)), says=_BROKER_URL, secret=True),
    "key_prefix": _Rule(check=_is_name, says="must be a non-empty key prefix without spaces, e.g. batchline:"),
    "queue": _Rule(check=_is_name, says="must be a queue name without spaces"),
    "ttl_seconds": _Rule(
        low=2 * DAY,
        unit=" seconds",
        why="a job's keys get their TTL when it is created and must outlive a provider batch's window, up to 48 hours",
    ),
    "max_poll_interval": _Rule(low=0, low_open=True, unit=" seconds"),
    "visibility_timeout": _Rule(low=1, unit=" seconds"),
    "sweep_interval": _Rule(low=0, low_open=True, high=DAY, unit=" seconds"),
    "claim_timeout": _Rule(low=0, low_open=True, high=DAY, unit=" seconds"),
    "batch_age_limit": _Rule(low=3600, high=30 * DAY, unit=" seconds"),
    "agent_lease": _Rule(low=0, low_open=True, high=DAY, unit=" seconds"),
    "test_delay": _Rule(low=0, high=DAY, unit=" seconds"),
    "test_create_seconds": _Rule(low=0, high=DAY, unit=" seconds"),
    "test_result_seconds": _Rule(low=0, high=DAY, unit=" seconds"),
    "cache_key_prefix": _Rule(check=_is_name, says="must be a non-empty key prefix without spaces, e.g. tenant-a:"),
    "cache_ttl_seconds": _Rule(low=60, high=365 * DAY, unit=" seconds"),
}


def _number(source: str, raw: Any, rule: _Rule, *, integer: bool) -> int | float:
    kind = "a whole number" if integer else "a number"
    bounds = []
    if rule.low > -math.inf:
        bounds.append(f"{'above' if rule.low_open else 'at least'} {plain_number(rule.low)}")
    if rule.high < math.inf:
        bounds.append(f"at most {plain_number(rule.high)}")
    takes = f"{kind}{', ' + ' and '.join(bounds) if bounds else ''}{rule.unit}"
    error = SettingsError(f"{source} must be {takes}{f' ({rule.why})' if rule.why else ''}, not {raw!r}.")
    number: float
    try:
        if isinstance(raw, bool):  # True is an int to Python, not a number of seconds
            raise ValueError
        if integer:
            number = raw if isinstance(raw, int) else int(str(raw).strip())
        else:
            number = float(raw) if isinstance(raw, int | float) else float(str(raw).strip())
        finite = math.isfinite(number)  # an integer too large for a float overflows here
    except (TypeError, ValueError, OverflowError):
        raise error from None
    if not finite or number > rule.high or number < rule.low or (rule.low_open and number == rule.low):
        raise error
    return number


def _boolean(source: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{source} must be true or false (1/0, yes/no, on/off), not {raw!r}.")


def _check_together(settings: Settings, sources: Mapping[str, str]) -> None:
    """The settings that bound each other: a waiting poll is never redelivered, a redelivered message finds its job."""
    poll, visibility, ttl = (sources[n] for n in ("max_poll_interval", "visibility_timeout", "ttl_seconds"))
    if settings.max_poll_interval >= settings.visibility_timeout:
        raise SettingsError(
            f"{poll} ({plain_number(settings.max_poll_interval)}s) must stay below {visibility} "
            f"({settings.visibility_timeout}s): a poll waits that long unacknowledged, and the broker would redeliver "
            "it."
        )
    if settings.broker_url and not settings.store_url and not settings.broker_url.startswith("memory://"):
        raise SettingsError(
            f"{sources['redis_url']} must name the store's Redis when {sources['broker_url']} is not a Redis one "
            "(e.g. a RabbitMQ broker, amqp://...)."
        )
    if settings.redis_cluster and not (settings.redis_url or "").startswith(("redis://", "rediss://")):
        raise SettingsError(
            f"{sources['redis_cluster']} needs {sources['redis_url']} to name a node of the cluster (a redis:// or "
            "rediss:// URL): the store is then a Redis Cluster, which Celery's broker cannot share."
        )
    for entry in settings.trusted_base_urls | settings.trusted_result_hosts:
        scope, url = scoped(entry)
        name = "trusted_base_urls" if entry in settings.trusted_base_urls else "trusted_result_hosts"
        if scope and scope not in BASE_URL_VARIABLES:
            raise SettingsError(
                f"{sources[name]} scopes an entry to {scope!r}, which is no provider's name: it takes one of "
                f"{', '.join(sorted(BASE_URL_VARIABLES))} (scoped to no provider, it would be trusted by none)."
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.query:
            raise SettingsError(
                f"{sources[name]} takes URLs like https://gateway.example.com/v1 (a scheme, a host, no user, password "
                "or query), each trusted with every provider's key, or with one provider's alone as "
                "openai=https://gateway.example.com/v1; one of its entries is not (not repeated: it may hold a secret)."
            )
    if settings.visibility_timeout > settings.ttl_seconds:
        raise SettingsError(
            f"{visibility} ({settings.visibility_timeout}s) must be at most {ttl} ({settings.ttl_seconds}s): a message "
            "redelivered after the job's keys expired finds no job."
        )
    if settings.ttl_seconds - settings.max_poll_interval - OVERDUE_GRACE - KEYS_MARGIN < DAY:
        raise SettingsError(
            f"{ttl} ({settings.ttl_seconds}s) less {poll} ({settings.max_poll_interval:.0f}s) leaves under a day: a "
            "job's batches are given up two hours and a poll's wait before its keys expire, which would cut a "
            "provider's 24-hour window short."
        )


def exit_if_celery_command(error: SettingsError) -> None:
    """Under the `celery` command (`celery -A batchline.worker worker`, or `batchline worker`), end with the one
    message: Celery would wrap any exception raised while loading the app in a page of traceback."""
    if "celery.bin.celery" in sys.modules:
        raise SystemExit(f"batchline: {error}")

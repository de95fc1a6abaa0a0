"""The Celery app: `celery -A batchline.worker worker -E` runs a batchline worker.

Configured from the environment (`BATCHLINE_BROKER_URL`, `BATCHLINE_REDIS_URL`, ...; see `config.Settings`). With no
broker configured it is the embedded default: Celery's in-memory broker, and an in-process worker that the API starts
on first use. A Django or Flask project uses its own Celery app instead: `batchline.worker.install(app)` applies
batchline's settings to it and makes the API send through it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from celery import Celery
from celery import _state as celery_state

from .config import Settings, exit_if_celery_command
from .errors import SettingsError
from .rabbitmq import configure_rabbitmq, is_rabbitmq
from .telemetry import instrument_celery
from .transport import use_shared_client_transport


def install(app: Celery, settings: Settings | None = None) -> Settings:
    """Run batchline on a project's own Celery app: apply batchline's settings to it (see `configure`), and send the
    API's tasks through it. `settings` default to those in the app's config and the environment."""
    settings = configure(app, settings)
    use_app(app)
    return settings


def default_result_backend(settings: Settings) -> str | None:
    """The store's Redis when it is one Redis; Celery's Redis backend speaks neither Cluster nor batchline's Sentinel
    URL, so with those the broker's Redis (when it is one) holds the task results, else nothing does."""
    store = settings.store_url
    if store is not None and not settings.redis_cluster and store.startswith(("redis://", "rediss://", "unix://")):
        return store
    broker = settings.broker_url or ""
    return broker if broker.startswith(("redis://", "rediss://")) else None


def configure(app: Celery, settings: Settings | None = None, *, own: bool = False) -> Settings:
    """Apply batchline's broker, events, transport and beat settings to a Celery app.

    Deprecated for a project's own app, use `install`, which also sends the API's tasks through it; `configure` stays
    for one release.

    A project's app keeps its own defaults: its queues (batchline's tasks go to `queue` only when one is named), its
    serializers and its beat schedule, to which the sweep is added. `own` is batchline's own app, whose default queue
    is batchline's.
    """
    if settings is None:
        try:
            settings = _settings_of(app)
        except SettingsError as error:
            exit_if_celery_command(error)  # one line for `celery -A ... worker`, not Celery's page of traceback
            raise
    conf = app.conf
    transport = {
        "visibility_timeout": settings.visibility_timeout,
        # Messages of a killed worker come back once the visibility timeout has passed; look for them often.
        "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 4)),
        "unacked_restore_throttle": 1,
        # A worker killed while it restores holds kombu's restore lock; it must not block others for long.
        "unacked_mutex_expire": min(300, settings.visibility_timeout),
        # The in-memory broker is polled; a short interval keeps the embedded default snappy.
        **({"polling_interval": 0.02} if settings.embedded else {}),
    }
    # kombu, Celery's Redis backend and Flower all read the prefix from these options.
    prefix = {"global_keyprefix": settings.celery_key_prefix} if settings.celery_key_prefix else {}
    sweep = {"task": "batchline.sweep", "schedule": timedelta(seconds=settings.sweep_interval)}
    broker_url = settings.broker_url or "memory://localhost/"
    if broker_url.startswith(("redis://", "rediss://")):
        use_shared_client_transport()
    conf.update(
        broker_url=broker_url,
        batchline_settings=settings,
        # Flower sees every step: task events from the workers, and a "sent" event for every message.
        worker_send_task_events=True,
        task_send_sent_event=True,
        task_track_started=True,
        # A poll waits up to max_poll_interval with its message unacknowledged; the broker must not redeliver it.
        broker_transport_options={**(conf.broker_transport_options or {}), **transport, **prefix},
        result_backend_transport_options={
            **(conf.result_backend_transport_options or {}),
            "visibility_timeout": settings.visibility_timeout,
            **prefix,
        },
        broker_connection_retry_on_startup=True,
        beat_schedule={**(conf.beat_schedule or {}), "batchline.sweep": sweep},
    )
    # Task results are summaries (ids and counts), kept where the store is so Flower and canvases can read them.
    backend = settings.result_backend or (None if settings.embedded else default_result_backend(settings))
    if backend:
        conf.update(result_backend=backend, result_expires=timedelta(days=1))
    rabbitmq_queue = configure_rabbitmq(app, settings.queue, own=own) if is_rabbitmq(broker_url) else None
    if own:
        conf.update(
            task_default_queue=settings.queue or DEFAULT_QUEUE,
            task_serializer="json",
            result_serializer="json",
            accept_content=["json"],
            # A worker waits for its broker however long it is away (a Redis restart, a failover) instead of
            # exiting after Celery's default 100 attempts (about 48 minutes).
            broker_connection_max_retries=None,
        )
    elif settings.queue:
        # On RabbitMQ the queue itself, declared so the broker holds the waiting polls (see rabbitmq.py).
        destination = (rabbitmq_queue if is_rabbitmq(broker_url) else None) or settings.queue
        route = {"batchline.*": {"queue": destination}}
        routes = conf.task_routes
        conf.task_routes = (
            route if not routes else {**routes, **route} if isinstance(routes, dict) else (*routes, route)
        )
    conf.include = [*conf.include, "batchline.tasks", "batchline.agents.tasks"]
    if settings.instrument:
        instrument_celery()  # task spans, and the trace context in every message's headers
    return settings


DEFAULT_QUEUE = "batchline"


def _settings_of(app: Celery) -> Settings:
    """batchline's settings from `app`'s config. A broker and result backend the project gave Celery itself
    (`CELERY_BROKER_URL` in Django settings, `broker_url` in Flask's config) are batchline's too, unless batchline's own
    are named: otherwise the project's broker would be replaced by the embedded default's."""
    settings = Settings.load(app.conf)
    broker, backend = app.conf.broker_url, app.conf.result_backend
    # memory:// is what a configured app already has for the embedded default; it names no broker of the project.
    if settings.broker_url is None and isinstance(broker, str) and broker and not broker.startswith("memory://"):
        settings = replace(settings, broker_url=broker)
    if settings.result_backend is None and isinstance(backend, str) and backend:
        settings = replace(settings, result_backend=backend)
    return settings


_current: Celery | None = None


def use_app(app: Celery) -> None:
    """Send batchline's tasks through `app` (a project's own Celery app) instead of batchline's own.

    Deprecated, use `install`, which also configures the app; `use_app` stays for one release."""
    global _current
    _current = app


def current_app() -> Celery:
    return _current if _current is not None else app


# Its banners show a broker with no password as it is (see broker_uri).
app = Celery("batchline", set_as_current=False, amqp="batchline.broker_uri:AMQP")
configure(app, own=True)
if getattr(celery_state, "default_app", None) is None:
    # `celery -A batchline.worker flower|inspect|...` and threads with no current app find this one, but an app a
    # project made current in its own thread keeps precedence there.
    app.set_default()
import batchline.agents.tasks  # noqa: E402  (registers the tasks on this app when it finalizes)
import batchline.tasks  # noqa: E402,F401

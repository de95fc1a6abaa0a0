"""What a finished job hands to the application: result chunks to a callback task, its summary to `on_complete`.

`on_complete` is a task name or a Celery canvas (a signature, chain or group of the application's own tasks), stored
in the job as JSON, so the pipeline is a canvas an application chains its own tasks onto. Only tasks named in the
workers' `allowed_callbacks` may be called: a job cannot make a worker run an arbitrary task.

The allow-list check reads a canvas the way Celery will run it, and refuses what it cannot read: every form Celery
runs inner tasks from (chain, group, chord, xmap, xstarmap, chunks, `link`, `link_error`, signatures inside
arguments and options) is walked, and an unknown canvas task, field or option is refused rather than guessed at. The
API checks when a job is created; the deliver step checks again right before sending, so a job record written
straight into the store cannot get past it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
import redis
from celery import Celery, Signature, signature

from .errors import CallbackNotAllowed

if TYPE_CHECKING:
    from .records import JobRecord
    from .runtime import Runtime

log = logging.getLogger("batchline")

# Celery's canvas tasks: name -> (the subtask_types Celery may mark it with, kwargs holding signatures, other kwargs).
# Celery builds the canvas from `subtask_type` when it is set, else from the task name: both must agree.
_CANVAS: dict[str, tuple[frozenset[str | None], frozenset[str], frozenset[str]]] = {
    "celery.chain": (frozenset({"chain"}), frozenset({"tasks"}), frozenset()),
    "celery.group": (frozenset({"group"}), frozenset({"tasks"}), frozenset()),
    "celery.chord": (frozenset({"chord"}), frozenset({"header", "body"}), frozenset({"kwargs"})),
    "celery.map": (frozenset({None, "xmap"}), frozenset({"task"}), frozenset({"it"})),
    "celery.starmap": (frozenset({None, "xstarmap"}), frozenset({"task"}), frozenset({"it"})),
    "celery.chunks": (frozenset({None, "chunks"}), frozenset({"task"}), frozenset({"it", "n"})),
}
_SIGNATURE_FIELDS = frozenset({"task", "args", "kwargs", "options", "subtask_type", "immutable", "chord_size"})
# Options that hold tasks Celery runs after (or instead of) this one: each must be a signature or a list of them.
_TASK_OPTIONS = frozenset({"link", "link_error", "chain", "chord"})
# Options that only schedule, route or identify the call. Anything else (`headers`, which can rename the task a
# worker runs, `shadow`, `stamped_headers`, ...) is refused.
_PLAIN_OPTIONS = frozenset(
    {
        "countdown",
        "eta",
        "expires",
        "priority",
        "queue",
        "routing_key",
        "exchange",
        "time_limit",
        "soft_time_limit",
        "ignore_result",
        "retry",
        "retry_policy",
        "serializer",
        "compression",
        "task_id",
        "group_id",
        "group_index",
        "root_id",
        "parent_id",
        "reply_to",
    }
)
_SCALAR = (str, int, float, bool, type(None))


def completion_spec(on_complete: str | Signature | None) -> str | None:
    """How `on_complete` is kept in the job: a task name as is, a canvas as its JSON."""
    if on_complete is None or isinstance(on_complete, str):
        return on_complete
    if isinstance(on_complete, Signature):
        try:
            return orjson.dumps(dict(on_complete)).decode()
        except TypeError as error:  # an argument JSON cannot hold: the worker could not read it back either
            raise CallbackNotAllowed(f"on_complete cannot be stored as JSON: {error}.") from None
    raise CallbackNotAllowed(
        f"on_complete must be a task name or a Celery signature, not {type(on_complete).__name__}."
    )


def check_tasks(callback: object, on_complete: object, allowed: frozenset[str]) -> None:
    """Raise CallbackNotAllowed unless every task `callback` and the stored `on_complete` spec would run is allowed.

    `callback` is None or a task name; `on_complete` is None or what `completion_spec` stored.
    """
    if callback is not None:
        _check_name(callback, allowed, "callback")
    if on_complete is None:
        return
    if not isinstance(on_complete, str):
        raise CallbackNotAllowed(f"on_complete must be a task name or a canvas, not {type(on_complete).__name__}.")
    if not on_complete.startswith("{"):
        _check_name(on_complete, allowed, "on_complete")
        return
    try:
        canvas = orjson.loads(on_complete)
    except orjson.JSONDecodeError:
        raise CallbackNotAllowed("on_complete is neither a task name nor a canvas's JSON.") from None
    try:
        _check_signature(canvas, allowed, "on_complete")
    except RecursionError:  # only a crafted record nests this deep; Celery would not get through it either
        raise CallbackNotAllowed("on_complete is nested too deeply to check.") from None


def _check_name(name: object, allowed: frozenset[str], where: str) -> None:
    if not isinstance(name, str) or not name:
        raise CallbackNotAllowed(f"{where} must name a task, not {name!r}.")
    if name not in allowed:
        raise CallbackNotAllowed(
            f"Task {name!r} is not in batchline's allowed_callbacks (it is {where}); add it to the config."
        )


def _check_signature(sig: object, allowed: frozenset[str], where: str) -> None:
    """Check one signature and everything it would run; `where` says where it sits, for the error."""
    if not isinstance(sig, Mapping):
        raise CallbackNotAllowed(f"{where} is not a Celery signature: {type(sig).__name__}.")
    unknown = sorted(str(key) for key in sig if key not in _SIGNATURE_FIELDS)
    if unknown:
        raise CallbackNotAllowed(f"{where} has fields batchline cannot check: {', '.join(unknown)}.")
    task, kind = sig.get("task"), sig.get("subtask_type")
    args, kwargs, options = sig.get("args") or [], sig.get("kwargs") or {}, sig.get("options") or {}
    if not isinstance(args, list) or not isinstance(kwargs, Mapping) or not isinstance(options, Mapping):
        raise CallbackNotAllowed(f"{where} ({task!r}) has args, kwargs or options of an unexpected type.")
    if not isinstance(task, str) or not task:
        raise CallbackNotAllowed(f"{where} names no task: {task!r}.")
    if not isinstance(kind, str | None):
        raise CallbackNotAllowed(f"{where} ({task}) has a subtask_type that is no name: {kind!r}.")
    if not isinstance(sig.get("immutable", False), bool) or not isinstance(sig.get("chord_size"), int | None):
        raise CallbackNotAllowed(f"{where} ({task!r}) has an unexpected immutable or chord_size.")
    if task in _CANVAS or kind is not None or task.startswith("celery."):
        _check_canvas(task, kind, kwargs, allowed, where)
    else:
        _check_name(task, allowed, where)
        _check_values(list(kwargs.values()), allowed, f"{where} ({task}) kwargs")
    _check_values(args, allowed, f"{where} ({task}) args")
    _check_options(options, allowed, f"{where} ({task})")


def _check_canvas(task: str, kind: object, kwargs: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    form = _CANVAS.get(task)
    if form is None and kind is not None:
        raise CallbackNotAllowed(f"{where} ({task}) is marked as a {kind!r} canvas, which batchline cannot check.")
    if form is None:
        raise CallbackNotAllowed(f"{where} uses the canvas task {task!r}, which batchline cannot check.")
    kinds, nested, other = form
    if kind not in kinds:
        raise CallbackNotAllowed(f"{where} is marked {kind!r} but names {task!r}: a canvas batchline cannot check.")
    unknown = sorted(str(key) for key in kwargs if key not in nested | other)
    if unknown or not nested <= kwargs.keys():
        raise CallbackNotAllowed(f"{where} ({task}) has kwargs batchline cannot check: {sorted(kwargs)}.")
    for key in sorted(nested):
        value = kwargs[key]
        items = value if isinstance(value, list) else [value]
        if not items and task != "celery.group":
            raise CallbackNotAllowed(f"{where} ({task}) has an empty {key!r}.")
        for i, item in enumerate(items):
            _check_signature(item, allowed, f"{where} > {task} {key}[{i}]")
    for key in sorted(other):
        value = kwargs.get(key)
        # A chord's `kwargs` are its body's keyword arguments, not a signature; `it` holds the calls' arguments.
        _check_values(list(value.values()) if isinstance(value, Mapping) else value, allowed, f"{where} ({task}) {key}")


def _check_options(options: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for key, value in options.items():
        if key in _TASK_OPTIONS:
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                if not isinstance(item, Mapping):  # Celery would read a bare string as a task name
                    raise CallbackNotAllowed(f"{where} option {key!r} must hold signatures, not {item!r}.")
                _check_signature(item, allowed, f"{where} {key}[{i}]")
        elif key in _PLAIN_OPTIONS:
            if key == "retry_policy" and isinstance(value, Mapping):
                value = list(value.values())
            if not all(isinstance(v, _SCALAR) for v in (value if isinstance(value, list) else [value])):
                raise CallbackNotAllowed(f"{where} option {key!r} holds a value batchline cannot check.")
        else:
            raise CallbackNotAllowed(f"{where} has the option {key!r}, which batchline cannot check.")


def _check_values(value: Any, allowed: frozenset[str], where: str) -> None:
    """A task's own arguments: any signature inside them (a dict with a `task`) is checked like the rest."""
    if isinstance(value, Mapping):
        if "task" in value:
            _check_signature(value, allowed, where)
            return
        for inner in value.values():
            _check_values(inner, allowed, where)
    elif isinstance(value, list):
        for item in value:
            _check_values(item, allowed, where)


BUILT_IN_COMPLETIONS = frozenset({"batchline.agent_resume"})
"""batchline's own `on_complete` tasks, always allowed: the one that wakes the agent runs a pool's batch answered only
wakes runs that wait on that batch's own requests."""


def refuse_delivery(runtime: Runtime, job_id: str, job: JobRecord) -> bool:
    """The worker's own check, right before sending: on refusal, record why on the job and send nothing."""
    try:
        check_tasks(job.callback, job.on_complete, runtime.settings.allowed_callbacks | BUILT_IN_COMPLETIONS)
    except CallbackNotAllowed as error:
        log.error("job %s: delivery refused: %s", job_id, error)
        runtime.store.set_delivery_error(job_id, str(error))
        return True
    return False


def send_completion(app: Celery, spec: str, summary: dict[str, Any]) -> None:
    """Call `on_complete` with the job's summary as its first argument."""
    if spec.startswith("{"):
        signature(orjson.loads(spec), app=app).apply_async(args=(summary,))
    else:
        app.send_task(spec, args=(summary,))


# Take lease KEYS[1] for ARGV[1] (ARGV[2] ms) unless another holds it: a holder taking it again resumes its own.
_TAKE = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# Renew (ARGV[2] ms) or, with no ARGV[2], free lease KEYS[1] while ARGV[1] holds it: never another delivery's.
_LEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return redis.call('DEL', KEYS[1])
"""


class DeliveryLease:
    """One delivery of a job at a time. A second one meanwhile (a fetch that runs again sends one) waits for the first
    to end or for its lease to run out: two at once would both send a chunk between its check and its mark. The holder
    renews the lease as it sends, so a long delivery keeps it, and frees only its own.

    The holder is the delivery's task message (`token`, its id): a copy of that message, redelivered because its
    worker died, resumes the delivery at once instead of waiting out the dead worker's lease."""

    SECONDS = 120

    def __init__(self, client: redis.Redis, key: str, token: str) -> None:
        self.redis, self.key, self.token = client, key, token
        self._take = client.register_script(_TAKE)
        self._script = client.register_script(_LEASE)

    def take(self) -> bool:
        return bool(self._take(keys=[self.key], args=[self.token, self.SECONDS * 1000]))

    def left(self) -> int:
        """Seconds until a lease held by another delivery runs out (at least 1)."""
        return max(int(self.redis.ttl(self.key)), 1)

    def renew(self) -> bool:
        """Hold the lease `SECONDS` more; False when it was lost (a stall past `SECONDS`: another delivery has it)."""
        return bool(self._script(keys=[self.key], args=[self.token, self.SECONDS * 1000]))

    def free(self) -> None:
        self._script(keys=[self.key], args=[self.token])

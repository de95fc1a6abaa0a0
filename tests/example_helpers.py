"""What the example-app tests share: the app's own worker in a subprocess, the environment a user gives the app,
Celery's process-wide state given back afterwards, and the flow a user checks through the app's test client (post
prompts, get the job id at once, wait until every answer is saved).

`python -m tests.example_helpers django|flask COUNT` runs that flow in a process of its own, on the embedded default
(the in-process worker would otherwise stay in the test session, as the current Celery app), and prints what it saw.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from celery import _state as celery_state

from batchline import worker
from batchline.emulator import Emulator

from .conftest import ROOT, RealSetup, WorkerProcess
from .example_hooks import runs_key
from .openai_anthropic_helpers import provider_env
from .waiting import wait_for

DJANGO_DIR = ROOT / "examples" / "django_app"
FLASK_DIR = ROOT / "examples" / "flask_app"
JOB_ID = re.compile(r"batch_[0-9a-f]{32}")

FAST = {
    # Polls come back within a second, and a killed worker's messages after four.
    "max_poll_interval": 1,
    "visibility_timeout": 4,
}


def app_env(setup: RealSetup, **extra: str) -> dict[str, str]:
    """The environment a project's processes get: Celery's own CELERY_BROKER_URL (batchline's store is that Redis, or
    BATCHLINE_REDIS_URL's when the broker is RabbitMQ),
    the setup's key prefix and queue, and the repository on the path for the worker's test hooks."""
    dropped = {"BATCHLINE_BROKER_URL"} | (
        {"BATCHLINE_REDIS_URL"} if setup.settings.broker_url == setup.settings.store_url else set()
    )
    env = {k: v for k, v in setup.env.items() if k not in dropped}
    env["CELERY_BROKER_URL"] = setup.settings.broker_url or ""
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def app_setting_names(env: dict[str, str]) -> list[str]:
    return [k for k in env if k.startswith(("BATCHLINE_", "CELERY_", "DJANGO_", "FLASK_"))]


class AppWorker(WorkerProcess):
    """`celery -A <app> worker`, run from the project's directory as its README says, with the test hooks loaded."""

    def __init__(self, app: str, cwd: Path, env: dict[str, str], log_path: Path, extra: Sequence[str] = ()) -> None:
        self.log_path = log_path
        self.log = log_path.open("ab")
        self.start = log_path.stat().st_size
        command = [sys.executable, "-m", "celery", "-A", app, "worker", "-E", "--loglevel=INFO", "--concurrency=2"]
        command += [f"--hostname=example-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "-I", "tests.example_hooks"]
        if queue := env.get("BATCHLINE_QUEUE"):
            # batchline's tasks go to the queue the setup names; the project's own stay on its default one.
            command += ["-Q", f"{queue},celery"]
        self.process = subprocess.Popen(
            [*command, *extra], env=env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_ready()

    def registered_tasks(self) -> list[str]:
        """The task names the worker printed at start-up."""
        return re.findall(r"^  \. (\S+)$", self.output()[self.start :], flags=re.MULTILINE)


@contextmanager
def celery_state_kept() -> Iterator[None]:
    """A project's Celery app makes itself current (and Flask's default) and the API sends through it: undo that."""
    state: Any = celery_state  # Celery's private module state, which its type stubs do not describe
    saved = state.default_app, getattr(state._tls, "current_app", None), worker._current
    try:
        yield
    finally:
        state.default_app, state._tls.current_app, worker._current = saved


def prompts(count: int) -> list[str]:
    return [f"private question number {i}" for i in range(count)]


def expected_texts(count: int) -> dict[str, str]:
    """What the `test` model and the emulator answer, by the custom_id the apps give each prompt."""
    return {f"prompt-{i:05d}": f"Mock response for prompt-{i:05d}" for i in range(count)}


# -- the flow, through an app's own test client ----------------------------------------------------------------------
class JsonClient(Protocol):
    jobs_path: str

    def post_json(self, path: str, body: Any) -> tuple[int, Any]: ...

    def get_json(self, path: str) -> tuple[int, Any]: ...


class DjangoClient:
    jobs_path = "/jobs/"

    def __init__(self) -> None:
        from django.test import Client

        self.client = Client()

    def post_json(self, path: str, body: Any) -> tuple[int, Any]:
        response = self.client.post(path, body, content_type="application/json")
        return response.status_code, response.json()

    def get_json(self, path: str) -> tuple[int, Any]:
        response = self.client.get(path)
        return response.status_code, response.json()


class FlaskClient:
    jobs_path = "/jobs"

    def __init__(self, app: Any) -> None:
        self.client = app.test_client()

    def post_json(self, path: str, body: Any) -> tuple[int, Any]:
        response = self.client.post(path, json=body)
        return response.status_code, response.get_json()

    def get_json(self, path: str) -> tuple[int, Any]:
        response = self.client.get(path)
        return response.status_code, response.get_json()


def enqueue(client: JsonClient, count: int) -> dict[str, Any]:
    """POST `count` prompts; the answer (202 with the job id)."""
    status, body = client.post_json(client.jobs_path, {"prompts": prompts(count)})
    assert status == 202, body
    assert JOB_ID.fullmatch(body["job_id"]), body
    return body


def wait_saved(client: JsonClient, status_url: str, count: int, log: WorkerProcess | None = None) -> dict[str, Any]:
    """Poll the status view until the job is complete and `count` answers are saved; its last answer."""
    seen: dict[str, Any] = {}

    def done() -> bool:
        code, body = client.get_json(status_url)
        assert code == 200, body
        seen.update(body)
        return bool(body["status"] == "completed" and body["saved"] == count)

    wait_for(
        done, lambda: f"{count} saved answers (last seen: {seen.get('status')}, {seen.get('saved')} saved)", log=log
    )
    return seen


# -- what each test checks, for either app -----------------------------------------------------------------------------
class Site(Protocol):
    """An example app running in this process against a real Redis, with its worker in a subprocess."""

    @property
    def setup(self) -> RealSetup: ...

    @property
    def client(self) -> JsonClient: ...

    @property
    def slot(self) -> WorkerSlot: ...

    def answers(self, job_id: str) -> dict[str, str]:
        """The job's answers in the app's own store, by custom_id; fails if one was saved twice."""
        ...

    def start_worker(self, log: Path, **env: str) -> AppWorker: ...


class WorkerSlot:
    """The app's worker that the module's tests share, started when a test needs it; a test that must have the queue
    to itself stops it."""

    def __init__(self, start: Callable[[], AppWorker]) -> None:
        self._start = start
        self._worker: AppWorker | None = None

    def running(self) -> AppWorker:
        if self._worker is None:
            self._worker = self._start()
        return self._worker

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None


def run_job(site: Site, count: int) -> dict[str, Any]:
    """Post `count` prompts through the app's test client; check the answer came at once and every answer is saved."""
    process = site.slot.running()
    created = enqueue(site.client, count)
    # The view answered before the provider did: the job is still running and nothing is saved yet.
    assert created["status"] in ("pending", "in_progress")
    assert site.answers(created["job_id"]) == {}
    final = wait_saved(site.client, created["status_url"], count, log=process)
    assert (final["total"], final["succeeded"], final["failed"]) == (count, count, 0)
    assert site.answers(created["job_id"]) == expected_texts(count)
    assert {a["custom_id"]: a["text"] for a in final["answers"]} == expected_texts(count)
    log = process.output()
    assert "private question" not in log  # prompts never reach a task message or a log line
    return created


def redeliver_a_saved_chunk(site: Site, log: Path) -> None:
    """Kill the worker after a callback saved its chunk but before the message was acknowledged; a new worker gets
    that chunk again. Every answer is then saved, once."""
    site.slot.stop()  # this test needs the queue to itself
    log.touch()
    first = site.start_worker(log, EXAMPLE_CALLBACK_LINGER="30")  # the callback lingers after its writes
    try:
        created = enqueue(site.client, 250)
        job_id = created["job_id"]
        runs = runs_key(site.setup.settings.key_prefix, job_id)
        wait_for(lambda: len(site.answers(job_id)) >= 100, "a chunk saved", log=first)
    finally:
        first.kill()  # on a failure too: it must not outlive the setup's keys
    second = site.start_worker(log)
    try:
        final = wait_saved(site.client, created["status_url"], 250, log=second)
        # Every chunk ran (3), and at least one chunk whose rows were already saved ran again.
        wait_for(lambda: int(site.setup.client.get(runs) or 0) >= 4, "a chunk delivered again", log=second)
    finally:
        second.stop()
    assert final["saved"] == 250
    assert site.answers(job_id) == expected_texts(250)
    assert "raised unexpected" not in second.output()


def run_embedded(kind: str, count: int, environ: dict[str, str], emulator: Emulator, **app: str) -> dict[str, Any]:
    """Run the flow with no broker anywhere (the embedded default), the model on the emulator, in a process of its
    own, with the app's `app` settings; what the status view said at the end."""
    env = {k: v for k, v in environ.items() if not k.startswith(("BATCHLINE_", "CELERY_", "DJANGO_", "FLASK_"))}
    env.update(provider_env(emulator), PYTHONPATH=str(ROOT), **app)
    env.update(BATCHLINE_EXAMPLE_MODEL="openai:gpt-4o-mini", BATCHLINE_MAX_POLL_INTERVAL="1")
    command = [sys.executable, "-m", "tests.example_helpers", kind, str(count)]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    seen: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    assert seen["created"]["status"] in ("pending", "in_progress")
    return seen["final"]  # type: ignore[no-any-return]


# -- the embedded default, in a process of its own -------------------------------------------------------------------
def _embedded_client(kind: str) -> JsonClient:
    if kind == "django":
        sys.path.insert(0, str(DJANGO_DIR))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        return DjangoClient()
    sys.path.insert(0, str(FLASK_DIR))
    from answerbox import create_app

    return FlaskClient(create_app({"TESTING": True}))


def _main(kind: str, count: int) -> None:
    client = _embedded_client(kind)
    created = enqueue(client, count)
    final = wait_saved(client, created["status_url"], count)
    print(json.dumps({"created": created, "final": final}))


if __name__ == "__main__":
    _main(sys.argv[1], int(sys.argv[2]))

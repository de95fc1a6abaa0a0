"""The embedded default: the same tasks on Celery's in-memory broker, run by a worker thread in this process."""

from __future__ import annotations

import atexit
import socket
import threading

from celery import Celery

_lock = threading.Lock()
_workers: dict[int, threading.Thread] = {}


def ensure_worker(app: Celery) -> None:
    """Start one in-process worker for `app`, once; it stops when the process exits."""
    with _lock:
        if id(app) in _workers:
            return
        started = threading.Event()
        worker = app.WorkController(
            app=app,
            ready_callback=lambda consumer: started.set(),
            hostname=f"batchline-embedded@{socket.gethostname()}",
            pool_cls="solo",
            concurrency=1,
            loglevel="WARNING",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )

        def run() -> None:
            # Shared tasks resolve their app through Celery's current app, and countdown retries run on the worker's
            # timer thread: both must find this app, so in the embedded default it is the process's default app.
            app.set_current()
            app.set_default()
            worker.start()

        thread = threading.Thread(target=run, name="batchline-embedded-worker", daemon=True)
        thread.start()
        atexit.register(worker.stop, in_sighandler=False)
        _workers[id(app)] = thread
    if not started.wait(30):
        raise RuntimeError("The embedded batchline worker did not start within 30 seconds.")
    from .tasks import keep_polls_ticking  # `celery worker` starts it on worker_ready, which this worker never sends

    keep_polls_ticking(app)

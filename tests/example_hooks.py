"""Loaded into the example apps' test workers (`-I tests.example_hooks`), outside the apps' own code.

It counts every run of an app's callback task in Redis, and with EXAMPLE_CALLBACK_LINGER=<seconds> it holds the task
that long after it has written its rows, before the worker acknowledges the message: a test kills the worker then,
and the chunk is delivered again to a new one.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery.signals import task_postrun, task_prerun

CALLBACKS = frozenset({"answers.save_results", "answerbox.save_results"})


def runs_key(prefix: str, job_id: str) -> str:
    return f"{prefix}example:runs:{job_id}"


@task_prerun.connect
def count_run(sender: Any = None, args: Any = (), **_: Any) -> None:
    if getattr(sender, "name", None) in CALLBACKS:
        # The store's Redis: the broker's, or BATCHLINE_REDIS_URL's when the broker is RabbitMQ.
        client = redis.Redis.from_url(os.environ.get("BATCHLINE_REDIS_URL") or os.environ["CELERY_BROKER_URL"])
        client.incr(runs_key(os.environ["BATCHLINE_KEY_PREFIX"], args[0]))


@task_postrun.connect
def linger(sender: Any = None, **_: Any) -> None:
    if getattr(sender, "name", None) in CALLBACKS:
        time.sleep(float(os.environ.get("EXAMPLE_CALLBACK_LINGER", "0")))

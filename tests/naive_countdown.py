"""A plain Celery app as most projects start one, on RabbitMQ's default classic queue: a countdown is held by the worker
unacknowledged until it is due. `celery -A tests.naive_countdown worker`; test_rabbitmq shows what consumer_timeout
does to it.

Configured from `NAIVE_BROKER_URL`, `NAIVE_QUEUE`, `NAIVE_REDIS_URL` and `NAIVE_KEY` (where each run is recorded)."""

from __future__ import annotations

import os

import orjson
import redis
from celery import Celery, Task

app = Celery("naive", broker=os.environ.get("NAIVE_BROKER_URL", "memory://"), set_as_current=False)
app.conf.update(task_default_queue=os.environ.get("NAIVE_QUEUE", "naive"), broker_connection_retry_on_startup=True)


@app.task(name="naive.wait", bind=True, acks_late=True)
def wait(self: Task[..., None]) -> None:
    """Record each run and whether the broker had delivered its message before."""
    client = redis.Redis.from_url(os.environ["NAIVE_REDIS_URL"])
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    client.rpush(os.environ["NAIVE_KEY"], orjson.dumps({"redelivered": redelivered}))

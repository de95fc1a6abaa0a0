"""An application's own tasks, loaded by the test workers: a callback that records each result's effect idempotently,
and two tasks a job's on_complete chains as a Celery canvas."""

from __future__ import annotations

import os
import time

import redis
from celery import shared_task


@shared_task(name="bltest.record", acks_late=True, reject_on_worker_lost=True)
def record(job_id: str, custom_ids: list[str]) -> int:
    client = redis.Redis.from_url(os.environ["BATCHLINE_REDIS_URL"])
    prefix = os.environ["BATCHLINE_KEY_PREFIX"]
    client.incr(f"{prefix}bltest:calls:{job_id}")  # every delivery, duplicates included
    time.sleep(float(os.environ.get("BLTEST_CALLBACK_SECONDS", "0")))  # a slow application, to be killed midway
    effects, count = f"{prefix}bltest:effects:{job_id}", f"{prefix}bltest:effect_count:{job_id}"
    new = 0
    for custom_id in custom_ids:
        # The application's write is keyed by custom_id (atomically with its counter), so a redelivered chunk
        # changes nothing, while an effect counted twice would show a double effect.
        new += int(client.eval(_RECORD, 2, effects, count, custom_id))
    return new


_RECORD = """
if redis.call('HSETNX', KEYS[1], ARGV[1], 1) == 1 then redis.call('INCR', KEYS[2]) return 1 end
return 0
"""


@shared_task(name="bltest.summarise")
def summarise(summary: dict[str, object]) -> str:
    """The first link of an on_complete chain: it receives the job's summary."""
    return f"{summary['job_id']}: {summary['succeeded']} of {summary['total']} succeeded"


@shared_task(name="bltest.notify")
def notify(line: str) -> str:
    """The second link: it receives what the first returned, and leaves it where the test can see it."""
    client = redis.Redis.from_url(os.environ["BATCHLINE_REDIS_URL"])
    client.rpush(f"{os.environ['BATCHLINE_KEY_PREFIX']}bltest:notified", line)
    return line

"""A callback task for the fault suite, loaded by its workers: it records each result's effect idempotently."""

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

"""An application's own tasks, loaded by the test workers: a callback that records each result's effect idempotently,
and two tasks a job's on_complete chains as a Celery canvas."""

from __future__ import annotations

import os
import time

import redis
from celery import shared_task

from batchline.redis_urls import is_cluster_url, store_client


def bltest_key(prefix: str, kind: str, job_id: str, cluster: bool = False) -> str:
    """Where the callback keeps `kind` (calls, effects, effect_count) for a job: on a Redis Cluster the job id is the
    key's hash tag, so an effect and its counter share a slot and one script writes both."""
    return f"{prefix}bltest:{kind}:{{{job_id}}}" if cluster else f"{prefix}bltest:{kind}:{job_id}"


@shared_task(name="bltest.record", acks_late=True, reject_on_worker_lost=True)
def record(job_id: str, custom_ids: list[str]) -> int:
    url, prefix = os.environ["BATCHLINE_REDIS_URL"], os.environ["BATCHLINE_KEY_PREFIX"]
    cluster = is_cluster_url(url)
    client = store_client(url) if cluster else redis.Redis.from_url(url)
    client.incr(bltest_key(prefix, "calls", job_id, cluster))  # every delivery, duplicates included
    time.sleep(float(os.environ.get("BLTEST_CALLBACK_SECONDS", "0")))  # a slow application, to be killed midway
    effects, count = (bltest_key(prefix, kind, job_id, cluster) for kind in ("effects", "effect_count"))
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
    client = store_client(os.environ["BATCHLINE_REDIS_URL"])
    client.rpush(f"{os.environ['BATCHLINE_KEY_PREFIX']}bltest:notified", line)
    return line

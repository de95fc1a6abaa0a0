"""The response cache's Redis keys and the steps on them; the `Store` keeps the job's own keys, this its cache's.

With the store's prefix `P`, a job `J` and the job's cache prefix `C` (`BATCHLINE_CACHE_KEY_PREFIX` when it was
created, kept as `JobRecord.cache`):

| key | type | holds |
|---|---|---|
| `P:job:J:ckey` | hash | each leading request's custom_id -> its cache key (see `plan.request_key`) |
| `P:job:J:fan` | hash | a leading request's custom_id -> JSON list of the job's identical requests after it |
| `P:job:J:cached` | set | custom_ids answered without being sent (their result is another request's) |
| `PCres:K` | string | the succeeded body the provider gave for key K, for the job's `cache_ttl` |
| `PCfly:K` | string | the id of the job sending the request of key K now; expires with the job keys' TTL |

The job's three keys are among `Store.job_keys`, so they live and go with the job. A part of a cache job is screened
once before it is sent (`provider_status` `screened`); requests that wait for another job sit in parts of their own
(`waiting`), screened again on their poll chain until each has an answer or is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import orjson

from .._chunks import chunks
from ..records import JobRecord
from ..store import Store
from ..store_cluster import refuse_on_cluster
from . import scripts
from .plan import CachePlan

SCREENED = "screened"
"""The `provider_status` of a part of a cache job that was screened and is sent as it is."""
WAITING = "waiting"
"""The `provider_status` of a part whose requests wait for another job's identical ones in flight."""
SLICE = 1000
"""Requests per script call: Redis stays free for others between them."""


@dataclass(frozen=True)
class Screened:
    """What screening a part did."""

    committed: bool
    """The part was split as sorted (False: nothing changed, or another step changed it first)."""
    stored: bool = False
    """Nothing of the part is left to send or wait for: it is stored."""
    spawned: int | None = None
    """The new part its waiting requests (or, from a waiting part, those to send now) moved to."""


class CacheStore:
    def __init__(self, store: Store) -> None:
        refuse_on_cluster(store, "The response cache (cache=True)")  # its scripts serve one job from another's keys
        self.store = store
        redis = store.redis
        self._serve = redis.register_script(scripts.SERVE_OR_CLAIM)
        self._settle = redis.register_script(scripts.SETTLE)
        self._commit = redis.register_script(scripts.COMMIT)

    def _job_keys(self, job_id: str) -> list[str]:
        suffixes = (":res", ":stream", "", ":cached", ":ckey", ":fan")
        return [self.store.job_key(job_id, suffix) for suffix in suffixes]

    def write_plan(self, job_id: str, plan: CachePlan) -> None:
        """Keep a new job's request keys and duplicates, before the job itself is written: a job in the store always
        has them."""
        pipe = self.store.redis.pipeline(transaction=False)
        ckey, fan = self.store.job_key(job_id, ":ckey"), self.store.job_key(job_id, ":fan")
        for keys in chunks(plan.keys.items(), SLICE):
            pipe.hset(ckey, mapping=dict(keys))
        for fans in chunks(plan.followers.items(), SLICE):
            pipe.hset(fan, mapping={leader: orjson.dumps(followers) for leader, followers in fans})
        pipe.expire(ckey, self.store.ttl)
        pipe.expire(fan, self.store.ttl)
        pipe.execute()

    def forget_plan(self, job_id: str) -> None:
        """Remove a plan whose job was never written."""
        self.store.redis.delete(self.store.job_key(job_id, ":ckey"), self.store.job_key(job_id, ":fan"))

    def screen(self, job_id: str, job: JobRecord, n: int, mode: Literal["first", "wait"]) -> Screened:
        """Answer what the cache holds for part `n`'s requests, take the in-flight marker of those that go now, and
        split off those that must wait (`first`: a part about to be sent) or those that go now (`wait`)."""
        store = self.store
        part_key = store.part_key(job_id, n)
        version = cast(bytes | None, store.redis.hget(part_key, "screens"))
        ids = list(store.part_ids(job_id, n))
        keys = self._job_keys(job_id)
        prefix: list[str | int] = [job_id, store.prefix + job.cache, store.job_key(""), store.ttl]
        classes = "".join(self._serve(keys=keys, args=[*prefix, *chunk]).decode() for chunk in chunks(ids, SLICE))
        hits = classes.count("h")
        sends = [cid for cid, kind in zip(ids, classes, strict=True) if kind == "s"]
        waits = [cid for cid, kind in zip(ids, classes, strict=True) if kind == "w"]
        if mode == "wait" and len(waits) == len(ids):
            return Screened(committed=False)
        keep, move = (sends, waits) if mode == "first" else (waits, sends)
        head: list[str | int] = [mode, (version or b"0").decode(), store.part_key(job_id, 0)[:-1], store.ttl, hits]
        args = [*head, int(len(keep) != len(ids)), len(keep), *keep, *move]
        new = int(self._commit(keys=[part_key, store.part_key(job_id, n, ":ids"), store.job_key(job_id)], args=args))
        if new == -2:
            return Screened(committed=False)
        return Screened(committed=True, stored=not keep, spawned=None if new < 0 else new)

    def settle(self, job_id: str, job: JobRecord, n: int) -> None:
        """Share the stored results of part `n`: with the job's duplicates, with the cache (successes), and with
        jobs waiting for them (the in-flight markers go). Run before the part is marked stored; safe to run again."""
        store = self.store
        keys = self._job_keys(job_id)
        head: list[str | int] = [job_id, store.prefix + job.cache, job.cache_ttl, store.ttl]
        for chunk in chunks(store.part_ids(job_id, n), SLICE):
            self._settle(keys=keys, args=[*head, *chunk])

    def cached_flags(self, job_id: str, custom_ids: Sequence[str]) -> list[bool]:
        """Whether each request was answered without being sent."""
        if not custom_ids:
            return []
        flags = self.store.redis.smismember(self.store.job_key(job_id, ":cached"), list(custom_ids))
        return [bool(flag) for flag in cast(list[int], flags)]

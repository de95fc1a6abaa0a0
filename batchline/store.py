"""Every Redis key batchline writes, under one prefix, with TTLs and atomic transitions.

Per job `J` (with prefix `P`; on a Redis Cluster each job key holds `{J}`, its hash tag: see `store_cluster.py`):

| key | type | holds |
|---|---|---|
| `P:job:J` | hash | model, state, counters, options, default parameters |
| `P:job:J:ids` | list | custom_ids in request order |
| `P:job:J:req` | hash | custom_id -> the provider-native request body, encoded once at create |
| `P:job:J:opt` | hash | custom_id -> that request's own parameters and settings, only where it has them |
| `P:job:J:part:N` | hash | one provider batch: state, claim, provider id, provider status and counts |
| `P:job:J:part:N:ids` | list | the custom_ids of part N |
| `P:job:J:res` | hash | custom_id -> result tag (one letter) + provider body, compressed (`compact.py`) |
| `P:job:J:stream` | stream | per stored chunk, one entry: custom_id -> status letter of each new result |
| `P:job:J:delivered` | set | delivery chunks whose effect has happened |
| `P:jobs` | sorted set | job ids by creation time |
| `P:polls` | sorted set | `J:N` -> time of the part's last poll, for the sweep |
| `P:due`, `P:due:tick` | | the parts waiting for their next poll, by due time: see `due_polls.py` |
| `P:pending` | sorted set | `J` -> when a submit of the still `pending` job was last sent or ran, for the sweep |
| `P:job:J:ckey`, `:fan`, `:cached` | | a job with the response cache: see `cache/store.py`, which keeps the cache too |

Results are stored once: a result for a custom_id that already has one is ignored, so a fetch that runs again
after a crash duplicates nothing and counts nothing twice.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast

import redis

from . import store_scripts as lua
from ._chunks import chunks as _chunks
from .compact import pack_many, unpack
from .errors import JobNotFound
from .records import HashValue, JobRecord, NewResult, PartRecord, PartState, StoredResult, UsageReader, tokens_of
from .scratch import Scratch
from .types import BatchStatus

CHUNK = 1000  # items per Redis round trip when reading or writing many
MISSING_SLICE = 5000  # part ids checked per script call: a few milliseconds of Redis's time each
JOB_SUFFIXES = ("", ":ids", ":req", ":opt", ":res", ":stream", ":delivered", ":ckey", ":fan", ":cached")


class Store:
    def __init__(self, client: redis.Redis, prefix: str = "batchline:", ttl_seconds: int = 30 * 24 * 3600) -> None:
        self.redis = client
        self.prefix = prefix
        self.ttl = ttl_seconds
        self._add_results = client.register_script(lua.ADD_RESULTS)
        self._transition = client.register_script(lua.TRANSITION)
        self._add_part = client.register_script(lua.ADD_PART)
        self._polled = client.register_script(lua.POLLED)
        self._missing = client.register_script(lua.MISSING)
        self._take_claim = client.register_script(lua.TAKE_CLAIM)

    # -- keys -------------------------------------------------------------------------------------------------------
    def job_key(self, job_id: str, suffix: str = "") -> str:
        return f"{self.prefix}job:{job_id}{suffix}"

    def part_key(self, job_id: str, part: int, suffix: str = "") -> str:
        return f"{self.prefix}job:{job_id}:part:{part}{suffix}"

    def scratch(self, owner: str) -> Scratch:
        """Keys an adapter may keep its own state under (`P:owner:...`), expiring with the store's TTL."""
        return Scratch(self.redis, f"{self.prefix}{owner}:", self.ttl)

    def pending_key(self) -> str:
        """The sorted set of jobs still `pending`, shared by all jobs of this prefix."""
        return f"{self.prefix}pending"

    def job_keys(self, job_id: str, parts: int) -> list[str]:
        keys = [self.job_key(job_id, s) for s in JOB_SUFFIXES]
        for n in range(parts):
            keys += [self.part_key(job_id, n), self.part_key(job_id, n, ":ids")]
        return keys

    # -- jobs -------------------------------------------------------------------------------------------------------
    def create_job(
        self,
        job_id: str,
        job: JobRecord,
        requests: Iterable[tuple[str, bytes, bytes | None]],
        parts: Sequence[tuple[str, Sequence[str]]],
    ) -> None:
        """Write a job, its requests `(custom_id, body, own options or None)` and its planned parts
        `(group, custom_ids)` atomically. The job starts `pending` with no results, whatever `job` says."""
        ttl = self.ttl
        pipe = self.redis.pipeline(transaction=True)
        ids_key, req_key, opt_key = (self.job_key(job_id, s) for s in (":ids", ":req", ":opt"))
        for rows in _chunks(requests, CHUNK):
            pipe.rpush(ids_key, *(cid for cid, _, _ in rows))
            pipe.hset(req_key, mapping=_fields({cid: body for cid, body, _ in rows}))
            own = {cid: opt for cid, _, opt in rows if opt is not None}
            if own:
                pipe.hset(opt_key, mapping=_fields(own))
        for n, (group, part_ids) in enumerate(parts):
            for ids in _chunks(part_ids, CHUNK):
                pipe.rpush(self.part_key(job_id, n, ":ids"), *ids)
            planned = {"state": PartState.PENDING, "total": len(part_ids), "group": group}
            pipe.hset(self.part_key(job_id, n), mapping=_fields(planned))
        initial = dataclasses.replace(
            job, state=BatchStatus.PENDING, parts=len(parts), succeeded=0, failed=0, input_tokens=0, output_tokens=0
        )
        pipe.hset(self.job_key(job_id), mapping=_fields(initial.to_hash()))
        for key in self.job_keys(job_id, len(parts)):
            pipe.expire(key, ttl)
        self._list_new_job(pipe, job_id, job.created_at)

    def _list_new_job(self, pipe: Any, job_id: str, created_at: float) -> None:
        """List the job in `P:jobs` and the pending set in the job's transaction, and run it: a job that survives a
        crash is one the sweep finds. The set lives as long as its newest job (the sweep trims older entries)."""
        pipe.zadd(f"{self.prefix}jobs", {job_id: created_at}).zadd(self.pending_key(), {job_id: created_at})
        pipe.expire(self.pending_key(), self.ttl).execute()

    def job(self, job_id: str) -> JobRecord | None:
        """The job's record; None when the store holds no such job."""
        return _job(self.redis.hgetall(self.job_key(job_id)))

    def load_job(self, job_id: str) -> JobRecord:
        """The job's record, or JobNotFound naming it."""
        return found(self.job(job_id), job_id)

    def delete_job(self, job_id: str, parts: int) -> None:
        """Remove every key of a job that was never sent (its submit message was refused), atomically."""
        pipe: Any = self.redis.pipeline(transaction=True)  # the sweep has nothing to re-send after it
        pipe.delete(*self.job_keys(job_id, parts)).zrem(f"{self.prefix}jobs", job_id).zrem(self.pending_key(), job_id)
        pipe.execute()

    def set_delivery_error(self, job_id: str, message: str) -> None:
        """Record on the job why its delivery was refused."""
        self.redis.hset(self.job_key(job_id), "delivery_error", message)

    def job_ids(self, limit: int = 100) -> list[str]:
        ids = cast(list[bytes], self.redis.zrevrange(f"{self.prefix}jobs", 0, limit - 1))
        return [i.decode() for i in ids]

    def transition_part(
        self, job_id: str, part: int, to: PartState, *from_states: PartState, **also: HashValue
    ) -> bool:
        """Move a part's state to `to` if it is in one of `from_states`, and set `also` in the same atomic step;
        exactly one caller wins a race."""
        return self._move([self.part_key(job_id, part)], "", to, from_states, also)

    def transition_job(self, job_id: str, to: BatchStatus, *from_states: BatchStatus, **also: HashValue) -> bool:
        """`transition` for a job. A job never moves back to `pending`: one that moves leaves the pending set in the
        same step."""
        keys = [self.job_key(job_id), self.pending_key()]
        return self._move(keys, job_id, to.value, tuple(s.value for s in from_states), also)

    def _move(
        self, keys: list[str], member: str, to: str, from_states: Sequence[str], also: Mapping[str, HashValue]
    ) -> bool:
        pairs = [item for field, value in also.items() for item in (field, value)]
        return bool(self._transition(keys=keys, args=[to, member, len(from_states), *from_states, *pairs]))

    def touch(self, job_id: str, parts: int) -> None:
        """Restart the TTL of every key of a job, so that a finished job lives `ttl` from its end."""
        pipe = self.redis.pipeline(transaction=False)
        for key in self.job_keys(job_id, parts):
            pipe.expire(key, self.ttl)
        pipe.execute()

    # -- requests ---------------------------------------------------------------------------------------------------
    def request_ids(self, job_id: str) -> Iterator[str]:
        yield from self._list(self.job_key(job_id, ":ids"))

    def part_ids(self, job_id: str, part: int) -> Iterator[str]:
        yield from self._list(self.part_key(job_id, part, ":ids"))

    def part_requests(self, job_id: str, part: int) -> Iterator[tuple[str, bytes]]:
        """`(custom_id, body)` of every request of a part, read a chunk at a time."""
        req_key = self.job_key(job_id, ":req")
        for chunk in _chunks(self.part_ids(job_id, part), CHUNK):
            bodies = cast(list[bytes], self.redis.hmget(req_key, chunk))
            yield from zip(chunk, bodies, strict=True)

    def request_options(self, job_id: str, custom_ids: Sequence[str]) -> list[bytes | None]:
        return cast(list[bytes | None], self.redis.hmget(self.job_key(job_id, ":opt"), custom_ids))

    def _list(self, key: str) -> Iterator[str]:
        start = 0
        while True:
            chunk = cast(list[bytes], self.redis.lrange(key, start, start + CHUNK - 1))
            yield from (i.decode() for i in chunk)
            if len(chunk) < CHUNK:
                return
            start += CHUNK

    # -- parts ------------------------------------------------------------------------------------------------------
    def part(self, job_id: str, part: int) -> PartRecord:
        return PartRecord.from_hash(_decoded(self.redis.hgetall(self.part_key(job_id, part))))

    def parts(self, job_id: str, count: int) -> list[PartRecord]:
        pipe = self.redis.pipeline(transaction=False)
        for n in range(count):
            pipe.hgetall(self.part_key(job_id, n))
        return [PartRecord.from_hash(_decoded(raw)) for raw in pipe.execute()]

    def set_part(self, job_id: str, part: int, **values: HashValue) -> None:
        self.redis.hset(self.part_key(job_id, part), mapping=_fields(values))

    def job_and_part(self, job_id: str, part: int) -> tuple[JobRecord | None, PartRecord]:
        """A job's record (None when there is no such job) and one part's, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.job_key(job_id))
        pipe.hgetall(self.part_key(job_id, part))
        job, part_fields = pipe.execute()
        return _job(job), PartRecord.from_hash(_decoded(part_fields))

    def polled(self, job_id: str, part: int, state: PartState, **values: HashValue) -> bool:
        """Record a poll of a part (see `record_poll`) and set `values` on it only while it is in `state`."""
        pairs = [item for field, value in values.items() for item in (field, value)]
        keys = [self.part_key(job_id, part), f"{self.prefix}polls"]
        return bool(self._polled(keys=keys, args=[time.time(), f"{job_id}:{part}", state, *pairs]))

    def add_part(self, job_id: str, source: int, custom_ids: Sequence[str], generation: int) -> int:
        """A new pending part that resubmits `custom_ids` of part `source`; asking again answers the same part."""
        keys = [self.job_key(job_id), self.part_key(job_id, source)]
        args: list[str | int] = [self.part_key(job_id, 0)[:-1], source, generation, self.ttl, *custom_ids]
        return int(self._add_part(keys=keys, args=args))

    def drop_requests(self, job_id: str) -> None:
        """Forget the request bodies of a finished job: nothing reads them again, and they hold the prompts."""
        self.redis.delete(self.job_key(job_id, ":req"))

    def strike(self, job_id: str, part: int, field: str) -> int:
        """Add one to a part's counter `field` (a step's poisoned tries); answer the new count."""
        return int(self.redis.hincrby(self.part_key(job_id, part), field, 1))

    def count_anomalies(self, job_id: str, count: int) -> None:
        """Add `count` provider result lines that were not stored (unreadable, foreign or repeated ids) to the job's
        `anomalies`, which the job's summary shows beside its counts."""
        self.redis.hincrby(self.job_key(job_id), "anomalies", count)

    def claim_part(self, job_id: str, part: int, token: str, over: str = "") -> bool:
        """Take the right to create a part's provider batch where no worker has it, or (`over`) from the worker whose
        claim that is, which gave up or died: in one step, so two workers taking over never both create. Only a part
        still `pending` is claimed."""
        return bool(self._take_claim(keys=[self.part_key(job_id, part)], args=[over, token]))

    def record_poll(self, job_id: str, part: int, *, counted: bool = True) -> None:
        """Note that a part was polled now (or, not `counted`, that its poll chain starts now) for the sweep."""
        pipe = self.redis.pipeline(transaction=False)
        if counted:
            pipe.hincrby(self.part_key(job_id, part), "polls", 1)
        pipe.zadd(f"{self.prefix}polls", {f"{job_id}:{part}": time.time()})
        pipe.execute()

    def last_poll(self, job_id: str, part: int) -> float | None:
        """When the part was last polled (or its poll chain started), as the sweep sees it; None if it is not
        waiting for a poll."""
        last = self.redis.zscore(f"{self.prefix}polls", f"{job_id}:{part}")
        return None if last is None else float(last)

    def forget_poll(self, job_id: str, part: int) -> None:
        self.redis.zrem(f"{self.prefix}polls", f"{job_id}:{part}")

    def submit_seen(self, job_id: str, at: float | None = None) -> None:
        """Note that a submit of the job was sent or runs now (`at`), while the job is still in the pending set."""
        self.redis.zadd(self.pending_key(), {job_id: time.time() if at is None else at}, xx=True)

    def stale_pending(self, older_than: float, limit: int, expired_before: float) -> list[str]:
        """Up to `limit` jobs still `pending` whose submit was last seen before `older_than`, oldest first.

        Entries seen before `expired_before` (their job's TTL has run out) are trimmed first, and an entry whose job
        is gone or has left `pending` without its entry (a crash between two writes cannot do that, a hand can) is
        dropped on the way, so the set only ever holds jobs waiting for a submit.
        """
        key = self.pending_key()
        self.redis.zremrangebyscore(key, "-inf", f"({expired_before}")
        raw = cast(list[bytes], self.redis.zrangebyscore(key, "-inf", older_than, start=0, num=limit))
        ids = [i.decode() for i in raw]
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(self.job_key(job_id), "state")
        states = cast(list[bytes | None], pipe.execute()) if ids else []
        pending = BatchStatus.PENDING.value.encode()
        waiting = [job_id for job_id, state in zip(ids, states, strict=True) if state == pending]
        gone = [job_id for job_id, state in zip(ids, states, strict=True) if state != pending]
        if gone:
            self.redis.zrem(key, *gone)
        return waiting

    def forget_pending(self, job_id: str) -> None:
        self.redis.zrem(self.pending_key(), job_id)

    def stale_polls(self, older_than: float) -> list[tuple[str, int]]:
        raw = cast(list[bytes], self.redis.zrangebyscore(f"{self.prefix}polls", "-inf", older_than))
        out = []
        for item in raw:
            job_id, _, part = item.decode().rpartition(":")
            out.append((job_id, int(part)))
        return out

    # -- results ----------------------------------------------------------------------------------------------------
    def add_results(
        self,
        job_id: str,
        results: Iterable[NewResult],
        chunk: int = 500,
        progress: Callable[[int], None] | None = None,
        usage: UsageReader | None = None,
    ) -> int:
        """Store `(custom_id, status, body)` results a chunk at a time; answer how many were new.

        A succeeded result's tokens are its adapter's (a `ReadResult`) or what `usage` reads from its body (see
        `costs.usage_reader`): the new results' add to the job's `input_tokens` and `output_tokens` as they are stored.

        `progress` hears the running count of new results after each chunk. A helper thread compresses each chunk
        (zstd lets go of the GIL for the whole chunk) and runs its script while the next chunk is read, one chunk at a
        time and in order, so at most two chunks are held. Each result is stored once whatever fails when: a chunk is
        one atomic step. A chunk's new results are one stream entry, unpacked by Lua onto its stack: at most 3,000.
        """
        if not 0 < chunk <= 3000:
            raise ValueError(f"chunk must be from 1 to 3,000, not {chunk}")
        keys = [self.job_key(job_id, ":res"), self.job_key(job_id, ":stream"), self.job_key(job_id)]
        added = 0
        with ThreadPoolExecutor(1, thread_name_prefix="batchline-store") as writer:
            pending: Future[Any] | None = None
            for batch in _chunks(results, chunk):
                usages = [tokens_of(result, usage) for result in batch]
                stored = writer.submit(self._store_chunk, keys, batch, usages)
                if pending is not None:
                    added += int(pending.result())
                    if progress is not None:
                        progress(added)
                pending = stored
            if pending is not None:
                added += int(pending.result())
                if progress is not None:
                    progress(added)
        return added

    def _store_chunk(self, keys: list[str], batch: list[NewResult], usages: list[tuple[int, int]]) -> int:
        args: list[Any] = [self.ttl, 0]
        values = pack_many([(result[1], result[2]) for result in batch])
        for result, value, (given, made) in zip(batch, values, usages, strict=True):
            args += [result[0], value, given, made]
        return int(self._add_results(keys=keys, args=args))

    def missing_results(self, job_id: str, part: int) -> Iterator[str]:
        """The custom_ids of part `part` that have no stored result yet."""
        keys = [self.job_key(job_id, ":res"), self.part_key(job_id, part, ":ids")]
        for start in range(0, self.redis.llen(keys[1]), MISSING_SLICE):
            missing = cast(list[bytes], self._missing(keys=keys, args=[start, start + MISSING_SLICE - 1]))
            yield from (cid.decode() for cid in missing)

    def results(self, job_id: str, custom_ids: Sequence[str]) -> list[StoredResult | None]:
        raw = cast(list[bytes | None], self.redis.hmget(self.job_key(job_id, ":res"), custom_ids))
        return [None if value is None else unpack(cid, value) for cid, value in zip(custom_ids, raw, strict=True)]

    def result_count(self, job_id: str) -> int:
        return self.redis.hlen(self.job_key(job_id, ":res"))

    # -- delivery ---------------------------------------------------------------------------------------------------
    def mark_delivered(self, job_id: str, marker: str) -> bool:
        """Record that a delivery chunk took effect; answer False if it already had."""
        key = self.job_key(job_id, ":delivered")
        added = bool(self.redis.sadd(key, marker))
        self.redis.expire(key, self.ttl)
        return added

    def is_delivered(self, job_id: str, marker: str) -> bool:
        return bool(self.redis.sismember(self.job_key(job_id, ":delivered"), marker))


def found(job: JobRecord | None, job_id: str) -> JobRecord:
    """`job`, or JobNotFound naming `job_id` when there is none."""
    if job is None:
        raise JobNotFound(f"No job {job_id!r} in the store (finished longer ago than its TTL, or another store).")
    return job


def _job(raw: Any) -> JobRecord | None:
    fields = _decoded(raw)
    return JobRecord.from_hash(fields) if fields else None


def _decoded(raw: Any) -> dict[str, str]:
    """A hash as HGETALL returns it (bytes to bytes), as text."""
    return {k.decode(): v.decode() for k, v in cast(dict[bytes, bytes], raw).items()}


def _fields(mapping: Mapping[str, Any]) -> Any:
    """A hash mapping as redis-py's (invariant) typing wants it."""
    return mapping

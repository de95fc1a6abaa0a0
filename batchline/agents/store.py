"""Every Redis key of the agent jobs and the shared model pools, under the store's prefix `P`.

| key | type | holds |
|---|---|---|
| `P:agent:A` | hash | the job: agent path, options, counts of runs by state and by step, tool calls, tokens |
| `P:agent:A:ids` | list | the custom_ids of the runs, in input order (run `I` is the I-th) |
| `P:agent:A:run:I` | hash | one run: its input, state, step, ticket, history, usage, output or error |
| `P:agent:A:lock:I` | string | the worker taking the run on now, with a lease |
| `P:agents` | sorted set | agent job ids by creation time |
| `P:agents:due` | sorted set | `A:I` -> since when the run can move on (new, or its result landed) and has not |
| `P:agentpool:M` | list | the tickets waiting in model `M`'s pool, oldest first |
| `P:agentpool:M:body` | hash | ticket -> its provider-native request body, until its batch job holds it |
| `P:agentpool:M:meta` | hash | the pool's model string, endpoint and poll interval |
| `P:agentpools` | sorted set | pool -> when it flushes at the latest (its oldest request's `max_wait`) |
| `P:agentticket:T` | string | where request `T` is: `q:M` in pool `M`, then its batch job's id, `done:J` answered |
| `P:agentflushing` | hash | batch job id -> the tickets taken from a pool for it, until the job is written |
| `P:agentpooljobs` | sorted set | batch jobs made from pools whose runs have not been resumed yet |
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import orjson

from ..store import Store
from ..store_cluster import refuse_on_cluster
from . import scripts
from .records import AgentJob, Request, RunRecord, RunState


class AgentStore:
    def __init__(self, store: Store) -> None:
        # Its scripts move a run between a job, a shared pool and the due set in one step: several slots on a cluster.
        refuse_on_cluster(store, "batchline.agents")
        self.store = store
        self.redis = store.redis
        self.prefix = store.prefix
        self.ttl = store.ttl
        register = self.redis.register_script
        self._take, self._flushed = register(scripts.TAKE), register(scripts.FLUSHED)
        self._resumed, self._unlock = register(scripts.RESUMED), register(scripts.UNLOCK)
        self._withdraw, self._forget = register(scripts.WITHDRAW), register(scripts.FORGET_UNLESS_ANSWERED)
        self._cancel = register(scripts.CANCEL)
        self._wait, self._finish, self._delivered = (
            register(s) for s in (scripts.WAIT, scripts.FINISH, scripts.DELIVERED)
        )

    # -- keys -------------------------------------------------------------------------------------------------------
    def job_key(self, job_id: str, suffix: str = "") -> str:
        return f"{self.prefix}agent:{job_id}{suffix}"

    def run_key(self, job_id: str, index: int) -> str:
        return f"{self.prefix}agent:{job_id}:run:{index}"

    def ticket_key(self, ticket: str) -> str:
        return f"{self.prefix}agentticket:{ticket}"

    def pool_key(self, pool: str, suffix: str = "") -> str:
        return f"{self.prefix}agentpool:{pool}{suffix}"

    @property
    def due_key(self) -> str:
        return f"{self.prefix}agents:due"

    @property
    def pools_key(self) -> str:
        return f"{self.prefix}agentpools"

    @property
    def flushing_key(self) -> str:
        return f"{self.prefix}agentflushing"

    @property
    def pool_jobs_key(self) -> str:
        return f"{self.prefix}agentpooljobs"

    # -- jobs and runs ----------------------------------------------------------------------------------------------
    def create_job(self, job: AgentJob, inputs: Sequence[tuple[str, str, bytes]]) -> str:
        """Write a job and its runs `(custom_id, prompt, history JSON)` in one transaction, every run due now."""
        job_id = f"agent_{uuid.uuid4().hex}"
        pipe = self.redis.pipeline(transaction=True)
        fields = job.to_hash()
        fields.update(new=len(inputs), total=len(inputs))
        pipe.hset(self.job_key(job_id), mapping=cast(Any, fields))
        pipe.rpush(self.job_key(job_id, ":ids"), *(cid for cid, _, _ in inputs))
        for index, (custom_id, prompt, history) in enumerate(inputs):
            key = self.run_key(job_id, index)
            pipe.hset(
                key, mapping={"custom_id": custom_id, "state": RunState.NEW, "prompt": prompt, "history": history}
            )
            pipe.expire(key, self.ttl)
        pipe.zadd(self.due_key, {f"{job_id}:{i}": job.created_at for i in range(len(inputs))})
        pipe.zadd(f"{self.prefix}agents", {job_id: job.created_at})
        for key in (self.job_key(job_id), self.job_key(job_id, ":ids")):
            pipe.expire(key, self.ttl)
        pipe.execute()
        return job_id

    def job(self, job_id: str) -> AgentJob | None:
        raw = cast(dict[bytes, bytes], self.redis.hgetall(self.job_key(job_id)))
        return AgentJob.from_hash({k.decode(): v.decode() for k, v in raw.items()}) if raw else None

    def completion_sent(self, job_id: str) -> bool:
        return bool(self.redis.hexists(self.job_key(job_id), "completion_sent"))

    def ids(self, job_id: str) -> list[str]:
        return [cid.decode() for cid in cast(list[bytes], self.redis.lrange(self.job_key(job_id, ":ids"), 0, -1))]

    def run(self, job_id: str, index: int) -> RunRecord | None:
        return RunRecord.from_hash(cast(dict[bytes, bytes], self.redis.hgetall(self.run_key(job_id, index))))

    def runs(self, job_id: str, indexes: Iterable[int]) -> list[RunRecord | None]:
        pipe = self.redis.pipeline(transaction=False)
        for index in indexes:
            pipe.hgetall(self.run_key(job_id, index))
        return [RunRecord.from_hash(raw) for raw in pipe.execute()]

    def cancel(self, job_id: str) -> bool:
        """Mark the job cancelled if it is still running; False for a job that had finished."""
        return bool(self._cancel(keys=[self.job_key(job_id)]))

    def run_steps(self, job_id: str, indexes: Iterable[int]) -> list[tuple[int, str, int]]:
        """`(index, state, step)` of some runs, without their histories."""
        pipe = self.redis.pipeline(transaction=False)
        wanted = list(indexes)
        for index in wanted:
            pipe.hmget(self.run_key(job_id, index), "state", "step")
        rows = []
        for index, (state, step) in zip(wanted, pipe.execute(), strict=True):
            if state is not None:
                rows.append((index, state.decode(), int(step or 0)))
        return rows

    def claim_completion(self, job_id: str, lease: float) -> bool:
        """Whether this worker sends the job's `on_complete` now: one at a time, again only once a claim lapsed."""
        return bool(self.redis.set(f"{self.job_key(job_id)}:completing", "1", nx=True, ex=max(1, int(lease))))

    def begin_round(self, job_id: str, index: int, step: int) -> int:
        """Count a try of the run's round `step + 1`; answer how many it has had, this one included."""
        return int(self.redis.hincrby(self.run_key(job_id, index), f"tries:{step}", 1))

    def lock(self, job_id: str, index: int, lease: float) -> str | None:
        """Take the run for `lease` seconds; None when another worker holds it."""
        token = uuid.uuid4().hex
        taken = self.redis.set(f"{self.job_key(job_id)}:lock:{index}", token, nx=True, px=int(lease * 1000))
        return token if taken else None

    def unlock(self, job_id: str, index: int, token: str) -> None:
        self._unlock(keys=[f"{self.job_key(job_id)}:lock:{index}"], args=[token])

    def wait(
        self,
        job: AgentJob,
        job_id: str,
        index: int,
        step: int,
        request: Request,
        saved: tuple[bytes, bytes],
        added: Any,
    ) -> tuple[bool, int, bool]:
        """The round made model request `step + 1`: save the run's history `saved` (messages, usage) waiting on it and
        put the request in its pool, at once. `(saved, requests now in the pool, whether the pool's deadline came
        sooner)`; not saved when another try of the round saved it first, or the run has ended."""
        keys = [self.run_key(job_id, index), self.job_key(job_id), self.due_key, self.ticket_key(request.ticket)]
        keys += [self.pool_key(request.pool), self.pool_key(request.pool, ":body"), self.pools_key]
        keys.append(self.pool_key(request.pool, ":meta"))
        args: list[str | bytes | float] = [step, request.ticket, *saved, added.tool_calls, f"{job_id}:{index}"]
        args += [time.time(), *added.tokens, request.body, request.pool, time.time() + job.max_wait, self.ttl]
        args += [request.model, request.endpoint, job.poll_interval, request.group]
        done, size, sooner = cast(list[int], self._wait(keys=keys, args=args))
        return bool(done), int(size), bool(sooner)

    def finish(
        self, job_id: str, index: int, step: int, state: RunState, fields: Mapping[str, bytes | str], added: Any
    ) -> int:
        """End the run once: 0 when it had ended already, 1 when this ended it, 2 when this ended the job too."""
        args: list[str | bytes | float] = [step, state.value]
        args += [fields.get("output", b""), fields.get("history", b""), fields.get("usage", b"")]
        args += [fields.get("error", ""), added.tool_calls, *added.tokens, time.time()]
        return int(cast(int, self._finish(keys=[self.run_key(job_id, index), self.job_key(job_id)], args=args)))

    def delivered(self, job_id: str, index: int, completion: bool) -> None:
        keys = [self.run_key(job_id, index), self.job_key(job_id), self.due_key]
        self._delivered(keys=keys, args=[f"{job_id}:{index}", "1" if completion else "0"])

    def due(self, older_than: float, limit: int) -> list[tuple[str, int]]:
        """Runs due since before `older_than`: their step message was lost, or the worker on it died."""
        members = cast(list[bytes], self.redis.zrangebyscore(self.due_key, 0, older_than, start=0, num=limit))
        if members:
            self.redis.zadd(self.due_key, {m: time.time() for m in members}, xx=True)
        return [_member(m.decode()) for m in members]

    def forget_due(self, job_id: str, index: int) -> None:
        self.redis.zrem(self.due_key, f"{job_id}:{index}")

    def forget_due_unless_answered(self, job_id: str, index: int, ticket: str) -> None:
        """Drop a run woken before its result landed; kept if the result landed meanwhile (its wake-up may be the
        message this worker's lock turned away)."""
        self._forget(keys=[self.due_key, self.ticket_key(ticket)], args=[f"{job_id}:{index}"])

    # -- tickets and pools ------------------------------------------------------------------------------------------
    def ticket(self, ticket: str) -> str | None:
        value = self.redis.get(self.ticket_key(ticket))
        return None if value is None else cast(bytes, value).decode()

    def pool_meta(self, pool: str) -> dict[str, str]:
        raw = cast(dict[bytes, bytes], self.redis.hgetall(self.pool_key(pool, ":meta")))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def due_pools(self, now: float) -> list[str]:
        return [p.decode() for p in cast(list[bytes], self.redis.zrangebyscore(self.pools_key, 0, now))]

    def pool_deadline(self, pool: str) -> float | None:
        score = self.redis.zscore(self.pools_key, pool)
        return None if score is None else float(score)

    def take(self, pool: str) -> tuple[str, list[str]]:
        """Take every ticket of the pool for a new batch job: `(its id, the tickets)`, recorded as being flushed."""
        job_id = f"batch_{uuid.uuid4().hex}"
        keys = [self.pool_key(pool), self.pools_key, self.flushing_key]
        taken = cast(list[bytes], self._take(keys=keys, args=[pool, job_id, time.time(), self.ticket_key("")]))
        return job_id, [t.decode() for t in taken]

    def bodies(self, pool: str, tickets: Sequence[str]) -> list[bytes | None]:
        return cast(list[bytes | None], self.redis.hmget(self.pool_key(pool, ":body"), tickets))

    def flushing(self, older_than: float) -> list[tuple[str, str, list[str]]]:
        """Flushes begun before `older_than` and never finished: `(job id, pool, tickets)`."""
        out = []
        for job_id, raw in cast(dict[bytes, bytes], self.redis.hgetall(self.flushing_key)).items():
            record = orjson.loads(raw)
            if isinstance(record, dict) and float(record.get("at") or 0) < older_than:
                tickets = record.get("tickets")
                out.append((job_id.decode(), str(record.get("pool")), [str(t) for t in tickets or []]))
        return out

    def flushed(self, pool: str, job_id: str, tickets: Sequence[str]) -> None:
        keys = [self.pool_key(pool, ":body"), self.flushing_key, self.pool_jobs_key]
        self._flushed(keys=keys, args=[job_id, time.time(), *tickets])

    def open_pool_jobs(self, older_than: float) -> list[str]:
        return [j.decode() for j in cast(list[bytes], self.redis.zrangebyscore(self.pool_jobs_key, 0, older_than))]

    def resumed(self, job_id: str, tickets: Sequence[str]) -> list[tuple[str, int]]:
        """Mark the tickets of a finished batch job as answered and their runs due; answer those runs."""
        args: list[str | float] = [job_id, time.time(), self.ticket_key(""), *tickets]
        members = cast(list[bytes], self._resumed(keys=[self.due_key], args=args))
        return [_member(m.decode()) for m in members]

    def pool_job_resumed(self, job_id: str) -> None:
        self.redis.zrem(self.pool_jobs_key, job_id)

    def claim_flush(self, job_id: str, seconds: float) -> bool:
        """Whether this worker writes the batch job of a flush (another may be writing it, or have died doing so)."""
        return bool(self.redis.set(f"{self.prefix}agentflushclaim:{job_id}", "1", nx=True, ex=max(1, int(seconds))))

    def withdraw(self, ticket: str) -> bool:
        """Take a ticket out of its pool before it is sent (its job was cancelled); False once it has left."""
        where = self.ticket(ticket)
        if where is None or not where.startswith("q:"):
            return False
        pool = where[2:]
        keys = [self.ticket_key(ticket), self.pool_key(pool), self.pool_key(pool, ":body")]
        return bool(self._withdraw(keys=keys, args=[ticket, pool]))


def _member(member: str) -> tuple[str, int]:
    job_id, _, index = member.rpartition(":")
    return job_id, int(index)

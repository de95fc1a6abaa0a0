"""The store on a Redis Cluster: every key of a job shares the job's hash tag, so its scripts run on one shard.

On a cluster a Lua script or a MULTI may only touch keys of one hash slot. `ClusterStore` names a job's keys
`P:job:{J}`, `P:job:{J}:res`, `P:job:{J}:part:N`, ... (the `{J}` is the tag: jobs spread over the shards by id) and an
adapter's scratch keys `P:{owner}:...` (one adapter's few small keys on one shard, so its transactions still work).
The cross-job sorted sets keep their names (`P:jobs`, `P:polls`, `P:pending`): each is one key on one shard, read
whole by the listing (`batch_list`, `batchline jobs`) and the sweep, which then read each job from its own shard.

The store's steps that touched a job's keys and one of those sets at once are split into a step per slot, ordered
so that a crash between the two leaves nothing the sweep does not already repair (see each method).

Key compatibility: the tagged names are made only for a cluster store (`redis+cluster://` or `redis_cluster`). A
single Redis or Sentinel store keeps today's names, so jobs in flight across an upgrade keep their keys; a cluster
store is new and never held an untagged job (a single Redis's data is not moved onto a cluster by batchline).
"""

from __future__ import annotations

import time
from typing import Any

import redis

from .errors import UnsupportedOnCluster
from .records import HashValue, PartState
from .scratch import Scratch
from .store import Store
from .types import BatchStatus

# `store_scripts.POLLED` without the sweep's sorted set, which lives in another slot: the part's own half of a poll.
POLLED_PART = """
redis.call('HINCRBY', KEYS[1], 'polls', 1)
if redis.call('HGET', KEYS[1], 'state') ~= ARGV[1] then return 0 end
if #ARGV > 1 then redis.call('HSET', KEYS[1], unpack(ARGV, 2)) end
return 1
"""


class ClusterStore(Store):
    def __init__(self, client: redis.Redis, prefix: str = "batchline:", ttl_seconds: int = 30 * 24 * 3600) -> None:
        if "{" in prefix or "}" in prefix:
            raise UnsupportedOnCluster(f"A key prefix on a Redis Cluster cannot hold braces (hash tags): {prefix!r}.")
        super().__init__(client, prefix, ttl_seconds)
        self._polled_part = client.register_script(POLLED_PART)

    # -- keys: one hash tag per job ---------------------------------------------------------------------------------
    def job_key(self, job_id: str, suffix: str = "") -> str:
        return f"{self.prefix}job:{{{job_id}}}{suffix}"

    def part_key(self, job_id: str, part: int, suffix: str = "") -> str:
        return f"{self.prefix}job:{{{job_id}}}:part:{part}{suffix}"

    def scratch(self, owner: str) -> Scratch:
        return Scratch(self.redis, f"{self.prefix}{{{owner}}}:", self.ttl)

    # -- the steps that crossed slots -------------------------------------------------------------------------------
    def _list_new_job(self, pipe: Any, job_id: str, created_at: float) -> None:
        # Listed first, then the job's own transaction. A crash between them leaves entries for a job that does not
        # exist: the listing skips a listed job it cannot read (as it does one that expired), and the sweep drops a
        # pending entry whose job is not `pending`. The other order could leave a pending job no sweep ever finds.
        listing: Any = self.redis.pipeline(transaction=False)
        listing.zadd(f"{self.prefix}jobs", {job_id: created_at}).zadd(self.pending_key(), {job_id: created_at})
        listing.expire(self.pending_key(), self.ttl).execute()
        pipe.execute()

    def delete_job(self, job_id: str, parts: int) -> None:
        # Unlisted first: a crash then leaves the keys of a job no one can see or re-send, which expire with its TTL.
        self.redis.zrem(f"{self.prefix}jobs", job_id)
        self.redis.zrem(self.pending_key(), job_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(*self.job_keys(job_id, parts))
        pipe.execute()

    def transition_job(self, job_id: str, to: BatchStatus, *from_states: BatchStatus, **also: HashValue) -> bool:
        # The move is atomic on the job's shard; leaving the pending set follows. A crash between them leaves an
        # entry whose job is no longer `pending`, which `stale_pending` drops without re-sending anything.
        moved = self._move([self.job_key(job_id)], job_id, to.value, tuple(s.value for s in from_states), also)
        if moved:
            self.redis.zrem(self.pending_key(), job_id)
        return moved

    def polled(self, job_id: str, part: int, state: PartState, **values: HashValue) -> bool:
        # The sweep's note first, then the part's record. Both halves were already unconditional and idempotent in
        # effect: a crash between them leaves a fresh note with an uncounted poll (the next poll counts), never a part
        # the sweep forgets. A note for a part that has ended meanwhile is what a racing poll left before too.
        self.redis.zadd(f"{self.prefix}polls", {f"{job_id}:{part}": time.time()})
        pairs = [item for field, value in values.items() for item in (field, value)]
        return bool(self._polled_part(keys=[self.part_key(job_id, part)], args=[state, *pairs]))


def refuse_on_cluster(store: Store, feature: str) -> None:
    """Raise UnsupportedOnCluster for `feature` (its scripts span jobs) when `store` is on a Redis Cluster."""
    if isinstance(store, ClusterStore):
        raise UnsupportedOnCluster(
            f"{feature} is not available on a Redis Cluster store: its Redis scripts span several jobs' keys. Use a "
            "single Redis (or Sentinel) store for it; see docs/SCALING.md."
        )

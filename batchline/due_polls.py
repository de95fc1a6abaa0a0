"""The parts waiting for their next poll, kept in Redis by due time, and the one tick message that wakes for them.

A waiting poll used to be a countdown message per part: a Redis-broker worker held every one of them in memory, and
each poll paid Celery's whole message path (4-5 ms of CPU, of which batchline's own step was 0.7 ms). Now a part's
next poll is a member `J:N` of the sorted set `P:due`, scored by when it is due, and `batchline.poll_due` polls the
due parts in groups. One tick message at a time waits for the earliest: `P:due:tick` holds the time it is sent for,
so a burst of schedules sends one tick, not one each.

A claimed member's score moves `LEASE` seconds ahead, and the group renews it while it works: a worker killed in the
middle of a group, or a Redis that went away, leaves its parts to come due again by themselves. Each script touches
one key, so the two keys may live on different shards of a Redis Cluster.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, cast

import redis

GROUP = 50
"""Parts claimed and polled by one `batchline.poll_due` run."""

LEASE = 20.0
"""How long a claimed part stays out of the due set's reach; a running group renews it every `RENEW` seconds."""

RENEW = 5.0

TICK_GRACE = 15.0
"""How long past its time a tick may be late (a busy queue) before a new one is sent in its place."""

TICK_SLACK = 0.25
"""A tick already due this little after the one asked for serves it: fewer tick messages, polls at most this late."""

# Take up to ARGV[2] members due by ARGV[1], moving each to ARGV[3] (the lease's end).
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #due do redis.call('ZADD', KEYS[1], ARGV[3], due[i]) end
return due
"""

# Members ARGV[2..] leave the set only while each still holds the lease ARGV[1] its group gave it: a part scheduled
# anew meanwhile (a submit that created it, a poll that set its next time) keeps that time.
_RELEASE = """
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do
  if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i])) == lease then redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return 0
"""

# Members ARGV[3..] still holding the lease ARGV[1] move on to the lease ARGV[2].
_RENEW = """
local lease = tonumber(ARGV[1])
for i = 3, #ARGV do
  if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i])) == lease then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i]) end
end
return 0
"""

# Ask for a tick at ARGV[1]: answer 1 (and note it, for ARGV[3] ms) unless one is noted by ARGV[1] + ARGV[2].
_WANT_TICK = """
local noted = tonumber(redis.call('GET', KEYS[1]))
if noted and noted <= tonumber(ARGV[1]) + tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""

# The tick for ARGV[1] runs: forget it, unless an earlier one replaced it meanwhile.
_TICK_RAN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def member(job_id: str, part: int) -> str:
    return f"{job_id}:{part}"


def parse(raw: bytes | str) -> tuple[str, int]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    job_id, _, part = text.rpartition(":")
    return job_id, int(part)


@dataclass
class Claim:
    """The parts one group took, and the end of the lease it holds them by (moved on by `renew`)."""

    parts: list[tuple[str, int]]
    until: float


@dataclass
class DuePolls:
    redis: redis.Redis
    prefix: str
    _scripts: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def key(self) -> str:
        return f"{self.prefix}due"

    @property
    def tick_key(self) -> str:
        return f"{self.prefix}due:tick"

    def _script(self, source: str) -> Any:
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self.redis.register_script(source)
        return script

    def schedule(self, job_id: str, part: int, at: float) -> None:
        """Poll part `part` of `job_id` at `at` (a time), instead of whenever it was due."""
        self.redis.zadd(self.key, {member(job_id, part): at})

    def forget(self, job_id: str, part: int) -> None:
        """The part needs no more polls (it ended, or its job is gone)."""
        self.redis.zrem(self.key, member(job_id, part))

    def when(self, job_id: str, part: int) -> float | None:
        """When the part's next poll is due (while a group polls it, its lease's end); None if none is."""
        score = self.redis.zscore(self.key, member(job_id, part))
        return None if score is None else float(score)

    def claim(self, limit: int = GROUP, lease: float = LEASE) -> Claim:
        """Up to `limit` parts due now, longest due first, each leased for `lease` seconds."""
        now = time.time()
        until = now + lease
        raw = self._script(_CLAIM)(keys=[self.key], args=[repr(now), limit, repr(until)])
        return Claim([parse(item) for item in cast(list[bytes], raw)], until)

    def renew(self, claim: Claim, parts: list[tuple[str, int]], lease: float = LEASE) -> None:
        """Extend the lease of `parts`, still being polled; a part scheduled anew or gone meanwhile keeps its state."""
        if parts:
            until = time.time() + lease
            members = [member(job_id, n) for job_id, n in parts]
            self._script(_RENEW)(keys=[self.key], args=[repr(claim.until), repr(until), *members])
            claim.until = until

    def release(self, claim: Claim, job_id: str, part: int) -> None:
        """The claimed part needs no more polls (it ended, or its job is gone): it leaves the set, unless someone
        scheduled it anew since the claim."""
        self._script(_RELEASE)(keys=[self.key], args=[repr(claim.until), member(job_id, part)])

    def earliest(self) -> float | None:
        """When the soonest poll is due; None when no part waits."""
        first = cast(list[tuple[bytes, float]], self.redis.zrange(self.key, 0, 0, withscores=True))
        return float(first[0][1]) if first else None

    def want_tick(self, at: float) -> str | None:
        """The tick to send for `at` (the value to give it; a time past is now), or None when one already noted
        serves."""
        now = time.time()
        at = max(at, now)
        if not math.isfinite(at):
            raise ValueError(f"a poll tick must be due at a finite time, not {at}")
        value = repr(round(at, 3))
        keep_ms = int((at - now + TICK_GRACE) * 1000)
        wanted = self._script(_WANT_TICK)(keys=[self.tick_key], args=[value, repr(TICK_SLACK), keep_ms])
        return value if wanted else None

    def tick_ran(self, value: str) -> None:
        self._script(_TICK_RAN)(keys=[self.tick_key], args=[value])

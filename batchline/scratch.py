"""One adapter's corner of the store: the keys it may keep its own state under."""

from __future__ import annotations

from dataclasses import dataclass

import redis


@dataclass(frozen=True)
class Scratch:
    """One adapter's corner of the store: its keys begin with `prefix`, and it sets `ttl` on what it writes."""

    redis: redis.Redis
    prefix: str
    ttl: int

    def key(self, *parts: object) -> str:
        return self.prefix + ":".join(str(part) for part in parts)

"""Which requests of a new job the response cache answers together: each request's key, and its duplicates.

It runs in the caller on the adapter's encoded bodies. A key hashes the model string, the request's group (for
OpenAI its endpoint and model), the job's own endpoint (a `Model` instance's base URL and non-secret headers; never
an API key, which no job holds) and the body as the adapter canonicalises it (`Codec.cache_body`). The custom_id is in
none of them: the same request under another id is the same entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..providers import Codec, Encoded


@dataclass(frozen=True)
class CachePlan:
    """A job's requests as the cache sees them."""

    leaders: list[Encoded]
    """The first request of each key, in request order: the ones that go into parts."""
    keys: dict[str, str]
    """A leader's custom_id -> its key."""
    followers: dict[str, list[str]] = field(default_factory=dict)
    """A leader's custom_id -> the custom_ids of the job's later identical requests, which get its answer."""


def request_key(model: str, endpoint: str, group: str, canonical: bytes) -> str:
    digest = hashlib.blake2b(digest_size=20)
    for piece in (model.encode(), endpoint.encode(), group.encode()):
        digest.update(len(piece).to_bytes(4, "big") + piece)  # length-prefixed: no two inputs hash the same way
    digest.update(canonical)
    return digest.hexdigest()


def plan_requests(codec: Codec, model: str, endpoint: str, encoded: Sequence[Encoded]) -> CachePlan:
    """Each request's key; the first request of a key leads, the later ones follow it."""
    leaders: list[Encoded] = []
    keys: dict[str, str] = {}
    by_key: dict[str, str] = {}
    followers: dict[str, list[str]] = {}
    for enc in encoded:
        key = request_key(model, endpoint, enc.group, codec.cache_body(enc.body))
        leader = by_key.setdefault(key, enc.custom_id)
        if leader == enc.custom_id:
            leaders.append(enc)
            keys[leader] = key
        else:
            followers.setdefault(leader, []).append(enc.custom_id)
    return CachePlan(leaders, keys, followers)

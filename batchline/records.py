"""What the store keeps, as types: a part's state and a stored result. The store reads and writes them; the
pipeline, the API and the adapters read them, and none of them needs to know how Redis holds them."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class PartState(enum.StrEnum):
    """A provider batch's life inside batchline."""

    PENDING = "pending"  # planned, not created
    SUBMITTED = "submitted"  # created at the provider, not ended
    ENDED = "ended"  # the provider ended it; results not yet stored
    STORED = "stored"  # every request of the part has its result stored


@dataclass(frozen=True, slots=True)
class StoredResult:
    custom_id: str
    status: str
    """pydantic-ai's `BatchResultStatus`: succeeded, errored, expired or canceled."""
    body: bytes

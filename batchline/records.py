"""What the store keeps, as types: a job's record, a part's record, a part's state and a stored result. The store
reads and writes them; the pipeline, the API and the adapters read them, and none of them needs to know how Redis
holds them.

`JobRecord` and `PartRecord` map one Redis hash each. `from_hash` reads a hash as the store's HGETALL gives it
(decoded to text); a field that is absent reads as its default, so a record written by an older batchline still
reads. `to_hash` gives the fields to write, under the same names and in the same encodings as always (redis-py writes
an int as `str(int)` and a float as `repr(float)`); a field at its "absent" default is left out, as it always was.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from .types import BatchStatus

HashValue = str | int | float
"""A value as the store writes it into a hash field."""

Tokens = tuple[int, int]
"""A result's `(input, output)` tokens."""

MOST_TOKENS = 2**40
"""More tokens than one request can have. A count above it, below 0 or not a whole number (`true`, `1.5`) is a broken
or hostile provider's and counts as none: a job's sums then stay inside Redis's 64-bit integers, which a count near
2**63 would break on every try of the fetch."""


def token_count(value: object) -> int:
    """A provider's token count, or 0 where it is not a plausible one (see `MOST_TOKENS`)."""
    return value if type(value) is int and 0 <= value <= MOST_TOKENS else 0


UsageReader = Callable[[bytes], Tokens]
"""Reads a provider's stored succeeded body: its `(input, output)` tokens."""

ReadResult = tuple[str, str, bytes, Tokens | None]
"""`(custom_id, status, body, tokens)` as an adapter read it: `tokens` None where the adapter read none."""

NewResult = tuple[str, str, bytes] | ReadResult
"""A result on its way into the store, with its tokens or not."""


def tokens_of(result: NewResult, reader: UsageReader | None) -> Tokens:
    """A succeeded result's tokens: those its adapter read, else what `reader` reads from its body; (0, 0) for any
    other result."""
    if result[1] != "succeeded":
        return 0, 0
    if len(result) == 4 and result[3] is not None:
        return result[3]
    return reader(result[2]) if reader is not None else (0, 0)


class PartState(enum.StrEnum):
    """A provider batch's life inside batchline."""

    PENDING = "pending"  # planned, not created
    SUBMITTED = "submitted"  # created at the provider, not ended
    ENDED = "ended"  # the provider ended it; results not yet stored
    STORED = "stored"  # every request of the part has its result stored


RESULT_TAGS = {"succeeded": b"s", "errored": b"e", "expired": b"x", "canceled": b"c"}
"""The one-letter prefix of a stored result, by pydantic-ai's `BatchResultStatus`."""
TAG_STATUS = {tag: status for status, tag in RESULT_TAGS.items()}


@dataclass(frozen=True, slots=True)
class StoredResult:
    custom_id: str
    status: str
    """pydantic-ai's `BatchResultStatus`: succeeded, errored, expired or canceled."""
    body: bytes


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job's hash (`P:job:J`): what it was created with, and its state and counts since."""

    model: str
    total: int
    created_at: float
    poll_interval: float = 60.0
    deadline: float = 0.0
    """When the job's timeout passes (a Unix time); 0 for no timeout."""
    chunk_size: int = 500
    max_resubmissions: int = 0
    params: str = "{}"
    """The job's `ModelRequestParameters`, as JSON."""
    settings: str = "{}"
    """The job's `ModelSettings`, as JSON."""
    callback: str | None = None
    on_complete: str | None = None
    """A task name, or a canvas as its JSON (see `delivery.completion_spec`)."""
    raw: bool = False
    """Some request was a provider's own body (raw mode): its results export as the provider's lines."""
    max_requests: int = 0
    """The most requests per provider batch; 0 for the provider's limit."""
    max_poll_interval: float = 0.0
    """This job's cap on the interval between polls (below the workers' own); 0 for the workers' cap."""
    endpoint: str = ""
    """The job's own base URL and non-secret headers (a pydantic-ai `Model` instance's provider), as JSON; empty for
    the workers' configured endpoint."""
    state: BatchStatus = BatchStatus.PENDING
    parts: int = 0
    succeeded: int = 0
    failed: int = 0
    anomalies: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    """Token usage of the job's succeeded results, summed by the store as it stores them (0 in an older record)."""
    completed_at: float | None = None
    delivery_error: str | None = None
    traceparent: str | None = None
    """The W3C trace context of the caller's `batch_create` span (ids only), when it was traced."""
    max_cost: Decimal | None = None
    """The job's budget in USD (`max_cost`); None for none (and in an older record)."""
    cancel_reason: str | None = None
    """Why batchline cancelled the job itself (its budget was passed); None when it did not."""
    cache: str = ""
    """The key prefix of the response cache the job reads and feeds (its tenant's); empty: the job uses no cache."""
    cache_ttl: int = 0
    """How long the answers the job puts in the cache stay there, in seconds."""
    cached: int = 0
    """Requests answered without being sent: from the cache, or by an identical request (of this job or another)."""
    kind: str = ""
    """What the job's requests ask for: empty for model requests (chat), `embedding` for embedding inputs."""

    @classmethod
    def from_hash(cls, fields: Mapping[str, str]) -> JobRecord:
        get = fields.get
        completed_at = get("completed_at")
        return cls(
            model=get("model", ""),
            total=int(get("total") or 0),
            created_at=float(get("created_at") or 0),
            poll_interval=float(get("poll_interval") or 60.0),
            deadline=float(get("deadline") or 0),
            chunk_size=int(get("chunk_size") or 500),
            max_resubmissions=int(get("max_resubmissions") or 0),
            params=get("params") or "{}",
            settings=get("settings") or "{}",
            callback=get("callback") or None,
            on_complete=get("on_complete") or None,
            raw=bool(get("raw")),
            max_requests=int(get("max_requests") or 0),
            max_poll_interval=float(get("max_poll_interval") or 0),
            endpoint=get("endpoint") or "",
            state=BatchStatus(get("state") or BatchStatus.PENDING),
            parts=int(get("parts") or 0),
            succeeded=int(get("succeeded") or 0),
            failed=int(get("failed") or 0),
            anomalies=int(get("anomalies") or 0),
            input_tokens=int(get("input_tokens") or 0),
            output_tokens=int(get("output_tokens") or 0),
            completed_at=float(completed_at) if completed_at else None,
            delivery_error=get("delivery_error") or None,
            traceparent=get("traceparent") or None,
            max_cost=Decimal(get("max_cost") or 0) or None,
            cancel_reason=get("cancel_reason") or None,
            cache=get("cache") or "",
            cache_ttl=int(get("cache_ttl") or 0),
            cached=int(get("cached") or 0),
            kind=get("kind") or "",
        )

    def to_hash(self) -> dict[str, HashValue]:
        fields: dict[str, HashValue] = {
            "model": self.model,
            "total": self.total,
            "created_at": self.created_at,
            "poll_interval": self.poll_interval,
            "deadline": self.deadline or 0,  # written as "0" when there is none, as it always was
            "chunk_size": self.chunk_size,
            "max_resubmissions": self.max_resubmissions,
            "params": self.params,
            "settings": self.settings,
            "state": self.state.value,
            "parts": self.parts,
            "succeeded": self.succeeded,
            "failed": self.failed,
        }
        optional: dict[str, HashValue | None] = {
            "callback": self.callback,
            "on_complete": self.on_complete,
            "raw": 1 if self.raw else None,
            "max_requests": self.max_requests or None,
            "max_poll_interval": self.max_poll_interval or None,
            "endpoint": self.endpoint or None,
            "anomalies": self.anomalies or None,
            "input_tokens": self.input_tokens or None,
            "output_tokens": self.output_tokens or None,
            "completed_at": self.completed_at,
            "delivery_error": self.delivery_error,
            "traceparent": self.traceparent,
            "max_cost": None if self.max_cost is None else str(self.max_cost),
            "cancel_reason": self.cancel_reason,
            "cache": self.cache or None,
            "cache_ttl": self.cache_ttl or None,
            "cached": self.cached or None,
            "kind": self.kind or None,
        }
        fields.update({name: value for name, value in optional.items() if value is not None})
        return fields


@dataclass(frozen=True, slots=True)
class PartRecord:
    """One provider batch's hash (`P:job:J:part:N`). A part the store does not hold reads as all defaults."""

    state: PartState = PartState.PENDING
    total: int = 0
    group: str = ""
    """The model (or other key) all the part's requests share: one provider batch runs one."""
    claim: str = ""
    """`token:time` of the worker that took the right to create the part's provider batch."""
    provider_id: str = ""
    provider_status: str = ""
    """The provider's own word for the batch's state."""
    provider_state: str = ""
    """The provider's state as batchline reads it (`Snapshot.state`: running, completed, failed, ...)."""
    completed: int = 0
    failed: int = 0
    error: str = ""
    details: str = ""
    """The adapter's `Snapshot.details`, as JSON."""
    polls: int = 0
    generation: int = 0
    """0 for a planned part; one more for each resubmission of requests that went again."""
    resubmit_of: int | None = None
    resubmitted_as: int | None = None
    submitted_at: float = 0.0
    """When its provider batch was recorded as created (0: by a batchline that did not note it)."""
    overdue_since: float = 0.0
    """When batchline asked its batch, still running past `batch_age_limit`, to cancel (0: never)."""
    create_failed_by: str = ""
    """The claim of the worker whose create failed: while it is still the claim, the claimer has given up."""
    create_error: str = ""
    anomalies: int = 0
    poll_poisoned: int | None = None
    fetch_poisoned: int | None = None
    find_poisoned: int | None = None
    create_poisoned: int | None = None
    """Poisoned tries of a step in a row (None: never poisoned)."""

    @classmethod
    def from_hash(cls, fields: Mapping[str, str]) -> PartRecord:
        get = fields.get
        return cls(
            state=PartState(get("state") or PartState.PENDING),
            total=int(get("total") or 0),
            group=get("group", ""),
            claim=get("claim", ""),
            provider_id=get("provider_id", ""),
            provider_status=get("provider_status", ""),
            provider_state=get("provider_state", ""),
            completed=int(get("completed") or 0),
            failed=int(get("failed") or 0),
            error=get("error", ""),
            details=get("details", ""),
            polls=int(get("polls") or 0),
            generation=int(get("generation") or 0),
            resubmit_of=_int_or_none(get("resubmit_of")),
            resubmitted_as=_int_or_none(get("resubmitted_as")),
            submitted_at=float(get("submitted_at") or 0),
            overdue_since=float(get("overdue_since") or 0),
            create_failed_by=get("create_failed_by", ""),
            create_error=get("create_error", ""),
            anomalies=int(get("anomalies") or 0),
            poll_poisoned=_int_or_none(get("poll_poisoned")),
            fetch_poisoned=_int_or_none(get("fetch_poisoned")),
            find_poisoned=_int_or_none(get("find_poisoned")),
            create_poisoned=_int_or_none(get("create_poisoned")),
        )

    def to_hash(self) -> dict[str, HashValue]:
        """Every field that differs from its default (a fresh part's are written by the store's create)."""
        fields: dict[str, HashValue] = {"state": self.state.value}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name != "state" and value != field.default and value is not None:
                fields[field.name] = value
        return fields

    @property
    def ended(self) -> bool:
        """The provider ended it: its results are being stored, or are."""
        return self.state in (PartState.ENDED, PartState.STORED)


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value else None

"""The public data types: the `Batch` handle, its status, and one `BatchResult` per request."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # `BatchResult` is a plain dataclass: a worker importing these types need not load pydantic-ai
    from pydantic_ai.messages import ModelResponse


class BatchStatus(enum.StrEnum):
    """Where a job is in its life. `.name` prints as `COMPLETED` and so on; the value is what the store holds."""

    PENDING = "pending"
    """Stored and queued; no provider batch exists yet."""
    IN_PROGRESS = "in_progress"
    """Every provider batch is created and the provider is working on them."""
    CANCELLING = "cancelling"
    """Cancel was asked for; waiting for the provider batches to stop."""
    COMPLETED = "completed"
    """Every request has a result (which may be a per-request error)."""
    FAILED = "failed"
    """The provider rejected every batch of the job; each request carries the reason as its error."""
    CANCELLED = "cancelled"
    """Cancelled before it finished; results that arrived before are kept."""
    EXPIRED = "expired"
    """The provider's window passed before every request ran."""

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.CANCELLED, BatchStatus.EXPIRED})


class ProviderBatch(BaseModel):
    """One batch at the provider: a job larger than a provider's limits is split into several."""

    model_config = ConfigDict(frozen=True)

    part: int
    id: str | None
    """The provider's id, once the provider has created it."""
    status: str
    """The provider's own word for its state (`validating`, `ended`, `BATCH_STATE_RUNNING`, ...)."""
    request_count: int
    completed_count: int = 0
    failed_count: int = 0
    error: str | None = None
    """Why the provider ended the batch without running it, when it did."""


class BatchUsage(BaseModel):
    """The token usage of a job's succeeded results, as the provider reported it in each result."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0


class AgentProgress(BaseModel):
    """Where the runs of an agent job are (`batchline.agents`)."""

    model_config = ConfigDict(frozen=True)

    not_started: int = 0
    waiting: int = 0
    """Runs whose model request is in a pool or a provider batch: the model requests in flight."""
    runs_by_step: dict[int, int] = {}
    """Waiting runs by the number of the model request they wait on (1 for their first)."""
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    model_requests: int = 0
    """Model requests made so far, across every run and round."""
    tool_calls: int = 0
    """Tool calls executed so far (a call taken again after a crash counts once)."""


class Batch(BaseModel):
    """A handle on a job. It round-trips through JSON, so an app can keep it (or only its `id`) and check later."""

    id: str
    model: str
    status: BatchStatus
    created_at: datetime
    completed_at: datetime | None = None
    request_count: int
    completed_count: int = 0
    """Requests with a successful result."""
    failed_count: int = 0
    """Requests with an error result, including those the provider never ran."""
    anomaly_count: int = 0
    """Result lines the provider sent that match no request of the job (not JSON, no custom_id, an id outside the
    part, a repeat): never stored or counted as results, so the counts above never exceed `request_count`."""
    provider_batches: list[ProviderBatch] = []
    cached_count: int = 0
    """Requests answered without being sent to the provider (a job created with `cache=True`): from the response
    cache, or by an identical request of this job or of another in flight; counted in the two counts above too."""
    usage: BatchUsage = BatchUsage()
    """Tokens of the results stored so far, each counted once; an answer the response cache gave (not sent, not paid
    for) counts none."""
    cost: Decimal | None = None
    """What that usage costs in USD at the provider's batch prices (genai-prices, as pydantic-ai's
    `ModelResponse.cost()` prices it); None when genai-prices does not know the model."""
    max_cost: Decimal | None = None
    """The job's budget in USD (`max_cost`), None for none: past it, what has not run yet is cancelled."""
    cancel_reason: str | None = None
    """Why batchline cancelled the job itself (its cost passed `max_cost`); None when it did not."""
    agent: AgentProgress | None = None
    """For an agent job (`batchline.agents`): its runs' progress. Its requests count its runs."""

    @property
    def is_complete(self) -> bool:
        """The job has finished, successfully or not: nothing more will arrive."""
        return self.status.is_final

    @property
    def is_successful(self) -> bool:
        """The job finished with a result for every request (some of which may be per-request errors)."""
        return self.status is BatchStatus.COMPLETED


@dataclass(frozen=True, slots=True)
class BatchError:
    """Why one request has no response: the provider's error code and message."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The outcome of one request: a pydantic-ai `ModelResponse` (an embedding input: its vector), or a `BatchError`."""

    custom_id: str
    response: ModelResponse | None = None
    error: BatchError | None = None
    cached: bool = False
    """Not sent for this custom_id: the answer an identical request got (from the response cache, a duplicate in
    the same job, or another job's request in flight), as the provider gave it then."""
    embedding: list[float] | None = None
    """The vector of an embedding input (`batch_create_embeddings`); None for model requests."""

    @property
    def is_successful(self) -> bool:
        return self.response is not None or self.embedding is not None

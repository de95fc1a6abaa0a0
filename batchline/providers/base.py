"""The interface every provider adapter implements: a `Codec` and a `Transport`.

The codec side (`Codec`: `encode`, `decode`, ...) runs in the caller's process and holds no secret: it turns
pydantic-ai requests into provider-native bodies before anything is stored, so bad input fails before anything is
spent, and turns stored results back into `ModelResponse`s on read. The transport side (`Transport`: `create`,
`status`, `results`, `cancel`, `find`, ...) runs on the workers, with the API keys from the worker's environment.

Each provider's package keeps them apart: `wire.py` (the provider's JSON, no I/O), `codec.py` (pydantic-ai, caller
side) and `transport.py` (HTTP, worker side); its adapter, a `Provider`, is both, and loads the codec only when asked
to encode or decode, so a worker never imports pydantic-ai's models.
"""

from __future__ import annotations

import abc
import importlib
import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, cast

import orjson

from ..errors import BatchInputError, HostileAnswer, MalformedAnswer
from ..raw import RawRequest

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelResponse
    from pydantic_ai.models import Model
    from pydantic_ai.models.batch import BatchRequest

    from ..config import Settings
    from ..records import ReadResult, StoredResult
    from ..scratch import Scratch
    from .endpoints import Endpoint

ADAPTERS: dict[str, str] = {
    "openai": "batchline.providers.openai:OpenAIProvider",
    "anthropic": "batchline.providers.anthropic:AnthropicProvider",
    "google": "batchline.providers.gemini:GeminiProvider",
    "groq": "batchline.providers.openai_compat:GroqProvider",
    "together": "batchline.providers.openai_compat:TogetherProvider",
    "azure": "batchline.providers.openai_compat:AzureProvider",
    "mistral": "batchline.providers.mistral:MistralProvider",
    "test": "batchline.providers.test:TestProvider",
}
"""Model prefix -> the adapter's `module:class`, imported on first use so that a worker loads only what it needs."""

State = Literal["running", "cancelling", "completed", "failed", "expired", "cancelled"]
ENDED: frozenset[State] = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(frozen=True, slots=True)
class Encoded:
    """A request in the provider's own format, ready to store and send."""

    custom_id: str
    body: bytes
    group: str = ""
    """Requests of different groups never share a provider batch (for OpenAI: the model)."""


@dataclass(frozen=True)
class Snapshot:
    """What the provider says about one of its batches."""

    id: str
    status: str
    """The provider's own word (`in_progress`, `ended`, `BATCH_STATE_RUNNING`, ...)."""
    state: State
    """The same, in batchline's words."""
    total: int = 0
    completed: int = 0
    failed: int = 0
    error: str | None = None
    """Why the provider ended the batch without running it (for example `token_limit_exceeded: ...`)."""
    details: dict[str, Any] = field(default_factory=dict)
    """What the adapter needs later to read results (file ids, a results URL), as plain JSON data."""

    @property
    def ended(self) -> bool:
        return self.state in ENDED


@dataclass(frozen=True)
class ProviderContext:
    """What a worker-side adapter may use: the settings, and its own corner of the store for what it must remember
    between calls (Anthropic's id map, Gemini's request order, the `test` provider's batches)."""

    settings: Settings
    scratch: Scratch


SCRATCH_CHUNK = 1000
"""Items per Redis round trip when an adapter reads or writes many in its scratch."""


class Codec(Protocol):
    """The caller's side of an adapter: pydantic-ai requests to provider bodies and stored results back."""

    name: ClassVar[str]
    max_requests: ClassVar[int]
    """The most requests one provider batch takes."""
    max_bytes: ClassVar[int]
    """The most bytes of request bodies one provider batch takes."""
    model_name: str

    def encode(self, request: BatchRequest) -> Encoded: ...
    def encode_many(self, requests: Sequence[BatchRequest]) -> list[Encoded]: ...
    def encode_raw(self, request: RawRequest) -> Encoded: ...
    def decode(self, result: StoredResult, request: BatchRequest) -> ModelResponse: ...
    def export_line(self, custom_id: str, status: str, body: bytes) -> bytes: ...
    def request_size(self, request: Encoded) -> int: ...
    def cache_body(self, body: bytes) -> bytes: ...


class Transport(Protocol):
    """The workers' side of an adapter: provider batches created, polled, read, cancelled and cleaned up."""

    name: ClassVar[str]
    can_find: ClassVar[bool]
    """Whether a batch whose id was lost can be found again by listing the provider's batches."""

    def create(
        self, job_id: str, part: int, requests: Iterable[tuple[str, bytes]], count: int, group: str = ""
    ) -> Snapshot: ...
    def status(self, batch_id: str) -> Snapshot: ...
    def results(self, batch: Snapshot) -> Iterator[tuple[str, str, bytes]]: ...
    def read_results(self, batch: Snapshot) -> Iterator[ReadResult]: ...
    def cancel(self, batch_id: str) -> Snapshot: ...
    def cleanup(self, batch: Snapshot) -> None: ...
    def find(self, job_id: str, part: int) -> Snapshot | None: ...
    def is_transient(self, status: str, body: bytes) -> bool: ...
    def unrun(self, batch: Snapshot) -> tuple[str, bytes]: ...


class Adapter:
    """What both sides share: the model, and the worker context (None when made for encoding only)."""

    name: ClassVar[str]

    def __init__(self, model_name: str, context: ProviderContext | None = None) -> None:
        self.model_name = model_name
        self._context = context

    @property
    def context(self) -> ProviderContext:
        if self._context is None:
            raise RuntimeError(f"The {self.name} adapter was made for encoding only; it has no worker context.")
        return self._context


class CodecBase(Adapter, abc.ABC):
    """A `Codec`'s defaults; the abstract methods are each provider's."""

    max_requests: ClassVar[int]
    max_bytes: ClassVar[int]

    @abc.abstractmethod
    def encode(self, request: BatchRequest) -> Encoded:
        """The provider-native body of `request`. Raises a clear error for what the batch API can't honour."""

    @abc.abstractmethod
    def decode(self, result: StoredResult, request: BatchRequest) -> ModelResponse:
        """The `ModelResponse` of a successful result; raises pydantic-ai's `ModelAPIError` for an error result.

        `request` carries the request's settings and parameters (its messages are empty): they decide how the
        result is read, as pydantic-ai's `Model.batch_decode` does.
        """

    def use_model(self, instance: Model) -> None:
        """Encode (and decode) with the user's pydantic-ai `Model` instance rather than one made for the name."""
        raise NotImplementedError(f"The {self.name} adapter encodes with no pydantic-ai model instance.")

    def encode_many(self, requests: Sequence[BatchRequest]) -> list[Encoded]:
        """`encode` for many requests; an adapter whose codec is async overrides it to use one event loop."""
        return [self.encode(request) for request in requests]

    def encode_raw(self, request: RawRequest) -> Encoded:
        """A request already in this provider's own format (raw mode), checked and passed through unchanged."""
        raise BatchInputError(f"The {self.name} adapter takes no raw requests; send pydantic-ai messages instead.")

    def export_line(self, custom_id: str, status: str, body: bytes) -> bytes:
        """A stored result as a line of this provider's own results file (raw mode's export)."""
        return orjson.dumps({"custom_id": custom_id, "status": status, "body": orjson.Fragment(body) if body else None})

    def request_size(self, request: Encoded) -> int:
        """The bytes `request` adds to a provider batch."""
        return len(request.body) + len(request.custom_id) + 64

    def cache_body(self, body: bytes) -> bytes:
        """The body as the response cache keys it: its JSON with sorted keys, so a raw body written in another key
        order is the same request. An adapter whose bodies carry what does not change the answer drops it here."""
        return orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)


class TransportBase(Adapter, abc.ABC):
    """A `Transport`'s defaults; the abstract methods are each provider's."""

    can_find: ClassVar[bool] = False

    @abc.abstractmethod
    def create(
        self, job_id: str, part: int, requests: Iterable[tuple[str, bytes]], count: int, group: str = ""
    ) -> Snapshot:
        """Create one provider batch of `count` requests streamed from the store, tagged with job and part.

        `group` is the `Encoded.group` every request of the part shares (for OpenAI: the model, or the endpoint and
        model of raw requests).
        """

    @abc.abstractmethod
    def status(self, batch_id: str) -> Snapshot: ...

    @abc.abstractmethod
    def read_results(self, batch: Snapshot) -> Iterator[ReadResult]:
        """Every result of an ended batch as `(custom_id, status, body, tokens)`, streamed, in any order.

        `tokens` are a succeeded result's `(input, output)` tokens read from the line already parsed, so the fetch
        does not parse the body again for them; None leaves that to the store (`costs.usage_reader`).

        `status` is pydantic-ai's `BatchResultStatus`. Requests the batch never ran may be left out: the pipeline gives
        them an `expired`, `canceled` or `errored` result from the batch's own state.
        """

    @abc.abstractmethod
    def cancel(self, batch_id: str) -> Snapshot: ...

    def use_endpoint(self, endpoint: Endpoint) -> None:
        """Send this adapter's calls to a job's own endpoint (a pydantic-ai `Model` instance's base URL), with the
        worker's own key, once the worker trusts it."""
        raise NotImplementedError(f"The {self.name} adapter serves no endpoint of a job's own.")

    def results(self, batch: Snapshot) -> Iterator[tuple[str, str, bytes]]:
        """`read_results` without the tokens: `(custom_id, status, body)`."""
        return (result[:3] for result in self.read_results(batch))

    def cleanup(self, batch: Snapshot) -> None:
        """Called once a batch's results are safely stored: delete what the provider keeps (files) if configured."""

    def find(self, job_id: str, part: int) -> Snapshot | None:
        """The batch created for this job and part, if the provider lists it (see `can_find`)."""
        return None

    def is_transient(self, status: str, body: bytes) -> bool:
        """Whether a result is worth another try in a new batch: the request expired, or met a rate limit, a timeout
        or a server error (as the SDKs would retry it live). A cancelled request is not."""
        if status == "expired":
            return True
        if status != "errored" or not body:
            return False
        try:
            return _transient_error(orjson.loads(body))
        except orjson.JSONDecodeError:
            return False

    def unrun(self, batch: Snapshot) -> tuple[str, bytes]:
        """The `(status, body)` result of a request that `batch` ended without running."""
        if batch.state == "expired":
            return "expired", b""
        if batch.state == "cancelled":
            return "canceled", b""
        code = "batch_failed" if batch.state == "failed" else "missing_result"
        message = batch.error or f"The provider ended batch {batch.id} ({batch.status}) without a result for it."
        return "errored", orjson.dumps({"code": code, "message": message})


class CodecModule(Protocol):
    """A provider package's `codec.py`: the pydantic-ai side, as module functions of the model name."""

    def codec_model(self, model_name: str, /) -> Model: ...
    def encode_many(
        self, model_name: str, requests: Sequence[BatchRequest], model: Model | None = None, /
    ) -> list[Encoded]: ...
    def decode(
        self, model_name: str, result: StoredResult, request: BatchRequest, model: Model | None = None, /
    ) -> ModelResponse: ...


class LazyCodec(CodecBase):
    """A codec whose pydantic-ai work lives in the module named by `codec_module`, imported on the first encode or
    decode: a worker, which does neither, never loads pydantic-ai's models or the provider's SDK."""

    codec_module: ClassVar[str]
    instance: Model | None = None
    """The user's pydantic-ai `Model` instance, when the job was created with one: it encodes (its class, settings and
    profile decide the body), and decodes in the caller's process that still holds it."""

    def use_model(self, instance: Model) -> None:
        self.instance = instance

    def pydantic_model(self) -> Model:
        """The pydantic-ai model that encodes and decodes: the user's instance, else one made for the model name."""
        return self.instance if self.instance is not None else self._codec().codec_model(self.model_name)

    def _codec(self) -> CodecModule:
        return cast("CodecModule", importlib.import_module(self.codec_module))

    def encode(self, request: BatchRequest) -> Encoded:
        return self.encode_many([request])[0]

    def encode_many(self, requests: Sequence[BatchRequest]) -> list[Encoded]:
        return self._codec().encode_many(self.model_name, requests, self.instance)

    def decode(self, result: StoredResult, request: BatchRequest) -> ModelResponse:
        return self._codec().decode(self.model_name, result, request, self.instance)


class Provider(CodecBase, TransportBase):
    """An adapter: its provider's `Codec` and `Transport` in one object, as `get_provider` gives it."""


if TYPE_CHECKING:

    def _both_sides(provider: Provider) -> tuple[Codec, Transport]:
        return provider, provider  # mypy checks here that every adapter satisfies both protocols


_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_TRANSIENT_CODES = frozenset(
    {"rate_limit_exceeded", "rate_limit_error", "overloaded_error", "api_error", "timeout_error", "server_error"}
    | {"RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED"}  # Google's status names
)


def _transient_error(value: Any) -> bool:
    """Whether an error body, in any of the providers' nestings, names a retryable status or error type."""
    if isinstance(value, dict):
        for key in ("status_code", "code", "status", "type"):
            field = value.get(key)
            if field in _TRANSIENT_STATUS or (isinstance(field, str) and field in _TRANSIENT_CODES):
                return True
        return any(_transient_error(v) for v in value.values() if isinstance(v, dict | list))
    if isinstance(value, list):
        return any(_transient_error(v) for v in value)
    return False


def as_dict(value: object) -> Mapping[str, Any]:
    """`value` when it is a JSON object, else an empty one: a field of the wrong shape is read as absent."""
    return value if isinstance(value, dict) else {}


UNUSABLE = ""
"""The custom_id `Provider.results` gives a line it could not read (not JSON, no usable id): the pipeline counts it
as an anomaly and stores nothing for it. No request has it: custom_ids are never empty."""

_PATH_ID = re.compile(r"[A-Za-z0-9_-]{1,256}")


def path_id(value: object, what: str, provider: str) -> str:
    """`value` if it is safe to put in a URL path as one segment; a `HostileAnswer` naming it otherwise, so that
    `../`, `?` or `/` in an id the provider handed back can never change which path is asked for."""
    if isinstance(value, str) and _PATH_ID.fullmatch(value):
        return value
    shown = repr(value)[:80]
    raise HostileAnswer(f"{provider}: the provider gave {what} {shown}, which is not a plain id; it is not followed")


def json_answer(content: bytes, provider: str) -> Any:
    """A JSON answer, or `MalformedAnswer` naming the provider."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        raise MalformedAnswer(f"{provider}: an answer is not JSON") from None


def created_snapshot_of(content: bytes, provider: str, to_snapshot: Callable[[object], Snapshot]) -> Snapshot:
    """A create call's answer. Once it names the batch's id, nothing else in it can fail the create: the id is what
    must reach the store (the batch is paid for), and the rest is read again by the next status call."""
    answer = json_answer(content, provider)
    try:
        return to_snapshot(answer)
    except MalformedAnswer:
        batch_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(batch_id, str) or not batch_id:
            raise
        return Snapshot(id=batch_id, status="unreadable", state="running")


def count_of(value: object) -> int:
    """A count as sent; anything but a non-negative whole number (`"lots"`) counts as none."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def vector_of(value: object) -> list[float] | None:
    """`value` itself when it is an embedding vector, a non-empty list of numbers; else None.

    `array` checks every item in C (a 1536-number vector in about 0.05 ms, a tenth of a Python loop's time), and the
    list the JSON parser made is kept rather than copied: a job's 50,000 vectors are read at once."""
    if not isinstance(value, list) or not value:
        return None
    try:
        array("d", value)
    except (TypeError, OverflowError):  # a string, null or object among the numbers, or a number beyond a float
        return None
    return value

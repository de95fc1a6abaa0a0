"""Embedding inputs: checked, encoded as each provider's embedding request, and their stored answers read as vectors.

Models are named as pydantic-ai's `Embedder` names them: `openai:<model>` (the Batch API's `/v1/embeddings`, one line
per input) and `google:<model>` (the Gemini API's `asyncBatchEmbedContent`), e.g. `openai:text-embedding-3-small`,
`google:gemini-embedding-001`. `input_type` is pydantic-ai's `EmbedInputType` and `settings` its `EmbeddingSettings`
(with the `google_` keys of `GoogleEmbeddingSettings`), read the way its live embedding models read them, so a
batch's vectors are the ones `Embedder.embed(...)` would give.

Everything here runs before anything is stored or sent: a bad input is a `BatchInputError` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._json import dumps
from .errors import BatchInputError
from .providers import Encoded, split_model
from .providers.gemini import wire as gemini_wire
from .providers.openai import wire as openai_wire
from .types import Batch, BatchResult, BatchUsage
from .validation import Range, check_model, check_number

if TYPE_CHECKING:
    from pydantic_ai.embeddings.result import EmbedInputType

EMBEDDING = "embedding"
"""`JobRecord.kind` of a job of embedding inputs."""

MAX_INPUTS = 50_000
"""The most inputs one job takes: OpenAI's own limit per embeddings batch. Each vector is kept in Redis as the
provider sent it (about 17 kB of JSON for 1536 dimensions), so a job of 50,000 holds about 850 MB; split a larger
corpus into several jobs."""
DIMENSIONS = Range(1, 8192, "", integer=True)

PROVIDERS = {"openai": "openai", "google": "gemini"}
"""Model prefix -> the adapter that batches its embeddings."""

EXAMPLES = "openai:text-embedding-3-small or google:gemini-embedding-001"

TASK_PREFIX_MODEL = "gemini-embedding-2"
"""The Gemini model conditioned by a prefix on each text (`google_task`) instead of a `taskType`."""
GOOGLE_TASKS = (
    "search result",
    "question answering",
    "fact checking",
    "code retrieval",
    "classification",
    "clustering",
    "sentence similarity",
    "raw",
)
SYMMETRIC_TASKS = frozenset({"classification", "clustering", "sentence similarity"})
SETTINGS = {
    "openai": frozenset({"dimensions", "truncate"}),
    "gemini": frozenset({"dimensions", "truncate", "google_task", "google_task_type", "google_title"}),
}


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """One text to embed, under the custom_id its vector comes back with."""

    custom_id: str
    text: str


@dataclass(frozen=True)
class BatchEmbeddings:
    """What `embed_batch` returns: the job's final `Batch` (status, usage, cost) and one `BatchResult` per input, in
    input order, each with its `embedding` or its `error`."""

    batch: Batch
    results: list[BatchResult]

    @property
    def embeddings(self) -> list[list[float] | None]:
        """The vectors in input order; None where that input failed."""
        return [result.embedding for result in self.results]

    @property
    def failed(self) -> list[BatchResult]:
        return [result for result in self.results if result.embedding is None]

    @property
    def usage(self) -> BatchUsage:
        return self.batch.usage

    @property
    def cost(self) -> Decimal | None:
        """USD at the provider's batch prices (genai-prices); None when unknown, never a made-up 0."""
        return self.batch.cost

    def __getitem__(self, custom_id: str) -> list[float]:
        """The vector of `custom_id`; KeyError when there is no such input or it failed (its error says why)."""
        for result in self.results:
            if result.custom_id == custom_id:
                if result.embedding is None:
                    reason = f"{result.error.code}: {result.error.message}" if result.error else "no result"
                    raise KeyError(f"{custom_id!r} has no embedding ({reason})")
                return result.embedding
        raise KeyError(custom_id)


@dataclass(frozen=True)
class EmbeddingModel:
    """An embedding model string, checked: its adapter (`openai`, `gemini`) and the provider's model name."""

    model: str
    provider: str
    name: str


def check_embedding_model(model: object) -> EmbeddingModel:
    """The model, if it is an embedding model of a provider batchline batches embeddings for."""
    text = check_model(model)
    prefix, name = split_model(text)
    provider = PROVIDERS.get(prefix)
    if provider is None:
        raise BatchInputError(
            f"model {text!r}: batchline batches embeddings of 'openai:' and 'google:' models ({EXAMPLES}); "
            f"{prefix!r} has none."
        )
    if "embed" not in name.lower():  # every OpenAI and Gemini embedding model says so in its name
        raise BatchInputError(
            f"model {text!r} is not an embedding model (its name has no 'embed'); use one such as {EXAMPLES}, "
            "or model_request_batch for a chat model."
        )
    return EmbeddingModel(text, provider, name.removeprefix("models/") if provider == "gemini" else name)


def check_inputs(inputs: object) -> list[EmbeddingRequest]:
    """Each input as an `EmbeddingRequest`: a text (its custom_id is its position, `"0"`, `"1"`, ...), a
    `(custom_id, text)` pair, or an `EmbeddingRequest`. Refused: no inputs, more than `MAX_INPUTS`, a text that is
    empty or not a string, an empty or repeated custom_id."""
    if isinstance(inputs, str | bytes) or not isinstance(inputs, Sequence):
        raise BatchInputError(
            f"inputs must be a list of texts or of (custom_id, text) pairs, not {type(inputs).__name__}."
        )
    if not inputs:
        raise BatchInputError("inputs is empty: a batch needs at least one text to embed.")
    if len(inputs) > MAX_INPUTS:
        raise BatchInputError(
            f"{len(inputs):,} inputs is more than one job takes ({MAX_INPUTS:,}); split them into several jobs."
        )
    seen: set[str] = set()
    out: list[EmbeddingRequest] = []
    for index, item in enumerate(inputs):
        if isinstance(item, EmbeddingRequest):
            custom_id, text = item.custom_id, item.text
        elif isinstance(item, str):
            custom_id, text = str(index), item
        elif isinstance(item, tuple | list) and len(item) == 2:
            custom_id, text = item
        else:
            raise BatchInputError(
                f"input #{index} must be a text, a (custom_id, text) pair or an EmbeddingRequest, "
                f"not {type(item).__name__}."
            )
        if not isinstance(custom_id, str) or not custom_id.strip():
            raise BatchInputError(f"input #{index} has custom_id {custom_id!r}; it must be a non-empty string.")
        if custom_id in seen:
            raise BatchInputError(f"custom_id {custom_id!r} is used twice; each input needs a unique custom_id.")
        if not isinstance(text, str) or not text.strip():
            shown = "an empty text" if isinstance(text, str) else f"a {type(text).__name__}, not a text"
            raise BatchInputError(f"input {custom_id!r} is {shown}; every input needs some text to embed.")
        seen.add(custom_id)
        out.append(EmbeddingRequest(custom_id, text))
    return out


def check_settings(model: EmbeddingModel, input_type: object, settings: object) -> dict[str, Any]:
    """`settings` (pydantic-ai's `EmbeddingSettings`) as the provider can honour them in a batch, checked."""
    if input_type not in ("query", "document"):
        raise BatchInputError(f"input_type must be 'query' or 'document', not {input_type!r}.")
    if settings is None:
        return {}
    if not isinstance(settings, Mapping):
        raise BatchInputError(f"settings must be an EmbeddingSettings dict, not {type(settings).__name__}.")
    found = dict(settings)
    allowed = SETTINGS[model.provider]
    if unknown := sorted(set(found) - allowed):
        raise BatchInputError(
            f"settings {', '.join(unknown)} cannot be honoured in a {model.provider} embeddings batch; "
            f"it takes {', '.join(sorted(allowed))}."
        )
    if found.get("truncate"):
        raise BatchInputError(f"settings truncate=True: {model.provider}'s batch embeddings cannot truncate inputs.")
    if "dimensions" in found:
        found["dimensions"] = int(check_number("settings dimensions", found["dimensions"], DIMENSIONS))
    for key in ("google_task_type", "google_title"):
        if key in found and (not isinstance(found[key], str) or not found[key].strip()):
            raise BatchInputError(f"settings {key} must be a non-empty string, not {found[key]!r}.")
    prefixed = model.name == TASK_PREFIX_MODEL
    if "google_task" in found and (not prefixed or found["google_task"] not in GOOGLE_TASKS):
        raise BatchInputError(
            f"settings google_task={found['google_task']!r}: only {TASK_PREFIX_MODEL} takes one, one of "
            f"{', '.join(GOOGLE_TASKS)} (other models take google_task_type)."
        )
    if "google_task_type" in found and prefixed:
        raise BatchInputError(f"settings google_task_type: {TASK_PREFIX_MODEL} takes google_task instead.")
    return found


def encode(
    model: EmbeddingModel, requests: Sequence[EmbeddingRequest], input_type: EmbedInputType, settings: Mapping[str, Any]
) -> list[Encoded]:
    """Each input as its provider's embedding request, ready to store and send."""
    dimensions: int | None = settings.get("dimensions")
    if model.provider == "openai":
        return [openai_wire.embedding_request(r.custom_id, model.name, r.text, dimensions) for r in requests]
    return [
        Encoded(r.custom_id, dumps(_gemini_body(model.name, r.text, input_type, settings)), gemini_wire.EMBED_GROUP)
        for r in requests
    ]


def _gemini_body(name: str, text: str, input_type: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """An `EmbedContentRequest`, conditioned as pydantic-ai's `GoogleEmbeddingModel` conditions a live one."""
    body: dict[str, Any] = {}
    if name == TASK_PREFIX_MODEL:
        task = settings.get("google_task", "search result")
        if task != "raw":  # raw: the text as it is
            if input_type == "document" and task not in SYMMETRIC_TASKS:
                text = f"title: {settings.get('google_title') or 'none'} | text: {text}"
            else:
                text = f"task: {task} | query: {text}"
    else:
        default = "RETRIEVAL_DOCUMENT" if input_type == "document" else "RETRIEVAL_QUERY"
        body["taskType"] = settings.get("google_task_type") or default
        if title := settings.get("google_title"):
            body["title"] = title
    if dimensions := settings.get("dimensions"):
        body["outputDimensionality"] = dimensions
    return {"content": {"parts": [{"text": text}]}, **body}


def embedding_of(provider: str, body: bytes) -> list[float] | None:
    """The vector of a stored succeeded body of `provider`'s embedding answers; None when it holds none."""
    if provider == "openai":
        return openai_wire.embedding_of(body)
    if provider == "gemini":
        return gemini_wire.embedding_of(body)
    return None

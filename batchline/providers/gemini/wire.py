"""The Gemini API batch mode's JSON, read and written: no I/O here, so recorded payloads test it directly.

The facts that shape it (see PROVIDERS.md): states are `BATCH_STATE_*`; `batchStats` counts are int64 strings and a
zero count is left out; inline responses come back in input order with no key, so the order is the only link; file
result lines carry the `key` they were sent with, in any order.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

from ..._json import dumps
from ...errors import MalformedAnswer
from ...records import ReadResult, Tokens, token_count
from ..base import UNUSABLE, Snapshot, State, as_dict, vector_of

log = logging.getLogger("batchline.gemini")

_STATES: dict[str, State] = {
    "PENDING": "running",
    "RUNNING": "running",
    "UNSPECIFIED": "running",
    "QUEUED": "running",
    "CANCELLING": "cancelling",
    "SUCCEEDED": "completed",
    "FAILED": "failed",
    "CANCELLED": "cancelled",
    "EXPIRED": "expired",
}
"""Gemini's state, without its `BATCH_STATE_` prefix (or the SDK's `JOB_STATE_`), in batchline's words."""

RPC_CODES: dict[int, str] = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}
"""`google.rpc.Code`: a per-request error and a failed batch's `error` carry these numbers."""

TRANSIENT_RPC_CODES = frozenset({4, 8, 13, 14})
"""Deadline, quota, internal and unavailable: what the SDK would retry live, so worth a new batch."""

INLINE_LIMIT = 20_000_000
"""The Gemini API's limit on an inline batch's request body."""
MAX_REQUESTS = 100_000
"""Gemini documents no request count per batch: this one (Anthropic's) keeps a part's result file and its fetch to
minutes and a failure to one part."""
MAX_BYTES = 2_000_000_000
"""The input file's limit."""

EMBED_GROUP = "embed"
"""The group of embedding inputs (`EmbedContentRequest` bodies): their parts are created with
`asyncBatchEmbedContent`; every other part with `batchGenerateContent`. Both read and answer the same batch shapes."""

EMBED_INLINE_LIMIT = 64_000
"""An embedding part goes inline only while its inputs stay under this many bytes: an inline batch's answers come back
inside the batch's own JSON, and a vector is hundreds of times its text (37 kB for 3072 dimensions), so past a few
hundred inputs the results are read from a file, line by line, instead."""

DISPLAY_PREFIX = "batchline:"
_DISPLAY_NAME = re.compile(r"^batchline:(?P<job>[^:]+):(?P<part>[0-9]{1,9})$")  # ASCII digits: int() takes them all


# -- names ------------------------------------------------------------------------------------------------------------
def display_name(job_id: str, part: int) -> str:
    """The batch's display name: it names job and part, so a batch whose id was lost is found again by listing."""
    return f"{DISPLAY_PREFIX}{job_id}:{part}"


def parse_display_name(name: object) -> tuple[str, int] | None:
    """`(job_id, part)` of a display name batchline wrote, else None (a batch made by someone else)."""
    match = _DISPLAY_NAME.match(name) if isinstance(name, str) else None
    return (match["job"], int(match["part"])) if match else None


def model_path(model: str) -> str:
    return "models/" + model.removeprefix("models/")


def batch_name(batch_id: str) -> str:
    return batch_id if batch_id.startswith("batches/") else f"batches/{batch_id}"


# -- requests ---------------------------------------------------------------------------------------------------------
def inline_item(custom_id: str, body: bytes) -> bytes:
    """One inline request. The key rides in `metadata`: the API may echo it, and when it does it beats the order."""
    return b"".join((b'{"request":', body, b',"metadata":{"key":', orjson.dumps(custom_id), b"}}"))


_ITEM_OVERHEAD = len(inline_item("", b"")) - len(b'""')


def inline_item_size(custom_id: str, body: bytes) -> int:
    """`len(inline_item(custom_id, body))`, without building it."""
    return len(body) + len(orjson.dumps(custom_id)) + _ITEM_OVERHEAD


def file_line(custom_id: str, body: bytes) -> bytes:
    """One line of an input file: results come back with this `key`, so the custom_id itself is the key."""
    return b"".join((b'{"key":', orjson.dumps(custom_id), b',"request":', body, b"}\n"))


def inline_batch(name: str, items: Sequence[bytes]) -> bytes:
    """The `batchGenerateContent` body of an inline batch, built from already-encoded items."""
    head = b'{"batch":{"displayName":' + orjson.dumps(name) + b',"inputConfig":{"requests":{"requests":['
    return b"".join((head, b",".join(items), b"]}}}}"))


def inline_overhead(name: str) -> int:
    """The bytes of an inline batch's body beyond its items and the commas between them."""
    return len(inline_batch(name, []))


def file_batch(name: str, file_name: str) -> bytes:
    return orjson.dumps({"batch": {"displayName": name, "inputConfig": {"fileName": file_name}}})


# -- operations -------------------------------------------------------------------------------------------------------
def count(stats: Mapping[str, Any], name: str) -> int:
    """A `batchStats` count: an int64 sent as a string, and absent when zero."""
    try:
        return max(0, int(stats.get(name) or 0))
    except (TypeError, ValueError, OverflowError):
        return 0


def state_of(word: str) -> State:
    """batchline's state for Gemini's; an unknown word is taken as still running, the only safe guess."""
    return _STATES.get(word.removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_"), "running")


def output_of(operation: Mapping[str, Any]) -> Mapping[str, Any]:
    """Where the results are: the Operation's `response`, or `metadata.output` (which google-genai reads)."""
    response = operation.get("response")
    if isinstance(response, dict) and ("inlinedResponses" in response or "responsesFile" in response):
        return response
    output = as_dict(operation.get("metadata")).get("output")
    return output if isinstance(output, dict) else {}


def responses_file(operation: Mapping[str, Any]) -> str | None:
    name = output_of(operation).get("responsesFile")
    return name if isinstance(name, str) and name else None


def inline_responses(operation: Mapping[str, Any]) -> list[Any] | None:
    box = output_of(operation).get("inlinedResponses")
    items = box.get("inlinedResponses") if isinstance(box, dict) else None
    return items if isinstance(items, list) else None


def error_text(error: object) -> str | None:
    """A `google.rpc.Status` as one line: `INVALID_ARGUMENT: message`."""
    if not isinstance(error, dict):
        return None
    code = error.get("code")
    name = RPC_CODES.get(code, str(code)) if isinstance(code, int) else str(error.get("status") or "ERROR")
    return f"{name}: {error.get('message') or 'no message'}"


def snapshot_of(operation: Mapping[str, Any], known_total: int = 0) -> Snapshot:
    """What an Operation says about its batch.

    A batch that SUCCEEDED with every request failed is reported as failed, with the reason, so the job and its part
    say what happened instead of "completed" (its per-request errors are still read and stored).
    """
    metadata = as_dict(operation.get("metadata"))
    name = operation.get("name") or metadata.get("name")
    if not isinstance(name, str) or not name:
        raise MalformedAnswer("gemini: a batch answer names no batch (no `name`)")
    word = str(metadata.get("state") or "BATCH_STATE_UNSPECIFIED")
    state = state_of(word)
    stats = as_dict(metadata.get("batchStats"))
    total = count(stats, "requestCount") or known_total
    succeeded, failed = count(stats, "successfulRequestCount"), count(stats, "failedRequestCount")
    error = error_text(operation.get("error"))
    if state == "completed" and total and not succeeded and failed >= total:
        state = "failed"
        error = f"Gemini reported the batch as {word}, but every one of its {total} requests failed."
    shown = metadata.get("displayName")
    details: dict[str, Any] = {"display_name": shown if isinstance(shown, str) else ""}
    if (file_name := responses_file(operation)) is not None:
        details["responses_file"] = file_name
    return Snapshot(
        id=name,
        status=word,
        state=state,
        total=total,
        completed=succeeded,
        failed=failed,
        error=error,
        details=details,
    )


# -- results ----------------------------------------------------------------------------------------------------------
def outcome(item: Mapping[str, Any]) -> tuple[str, bytes, Tokens | None] | None:
    """`(status, body, tokens)` of one result: the response and its tokens, or the error it failed with. None when it
    holds neither."""
    if isinstance(item.get("error"), dict):
        return "errored", dumps(item["error"]), None
    status = item.get("status")
    if isinstance(status, str) and status:  # Vertex AI's output names a failure in `status`
        return "errored", dumps({"code": 2, "message": status}), None
    response = item.get("response")
    if isinstance(response, dict):
        return "succeeded", dumps(response), answer_tokens(response)
    return None


def result_line(line: bytes) -> ReadResult:
    """`(custom_id, status, body, tokens)` of a results-file line; `UNUSABLE` for a line that is not one (logged,
    never shown): not JSON, or without a string key and a response or error. A numeric key is not a custom_id."""
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError:
        log.error("gemini: a results-file line is not JSON (%d bytes); its request gets no result from it", len(line))
        return UNUSABLE, "not JSON", b"", None
    key = item.get("key", item.get("custom_id")) if isinstance(item, dict) else None
    found = outcome(item) if isinstance(item, dict) else None
    if not isinstance(key, str) or found is None:
        log.error("gemini: a results-file line has no key, response or error; it is skipped")
        return UNUSABLE, "no key, response or error", b"", None
    return (key, *found)


def inline_results(items: Sequence[Any], ids: Sequence[str] | None, *, by_index: bool = False) -> Iterator[ReadResult]:
    """`(custom_id, status, body, tokens)` of inline responses.

    `ids` are the custom_ids in the order they were sent. A response that echoes its key is matched by it; the rest by
    position, which is only sound when every request has its response: with fewer, those are left out, and the
    pipeline gives them the batch's own outcome rather than pinning a result on the wrong request. Without `ids`,
    only echoed keys are kept, unless `by_index` names each response by its position (`"0"`, `"1"`, ...), for a batch
    batchline did not create.
    """
    known = set(ids) if ids is not None else None
    by_position = ids is not None and len(items) == len(ids)
    skipped = 0
    for index, item in enumerate(items):
        found = outcome(item) if isinstance(item, dict) else None
        key = as_dict(item.get("metadata") if isinstance(item, dict) else None).get("key")
        if found is None:
            skipped += 1
            yield UNUSABLE, "no response or error", b"", None
        elif isinstance(key, str) and (known is None or key in known):
            yield (key, *found)
        elif by_position:
            assert ids is not None
            yield (ids[index], *found)
        elif ids is None and by_index:
            yield (str(index), *found)
        else:
            skipped += 1
            yield UNUSABLE, "not matched to a request", b"", None
    if skipped:
        log.warning("gemini: %d inline responses could not be matched to a request and were left out", skipped)


def is_transient(body: bytes) -> bool:
    """Whether an error result's `google.rpc.Status` is one the SDK would retry (quota, deadline, server)."""
    try:
        error = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(error, dict):
        return False
    code = error.get("code")
    return (isinstance(code, int) and code in TRANSIENT_RPC_CODES) or error.get("status") in {
        RPC_CODES[c] for c in TRANSIENT_RPC_CODES
    }


def usage_of(body: bytes) -> tuple[int, int]:
    """`(input, output)` tokens of a stored succeeded body: a `GenerateContentResponse`'s `usageMetadata`, the output
    counting thinking tokens as pydantic-ai does, or an embedding's input tokens; (0, 0) when it has none."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 0, 0
    return answer_tokens(answer) if isinstance(answer, dict) else (0, 0)


def answer_tokens(answer: Mapping[str, Any]) -> Tokens:
    """`usage_of` of a response already parsed."""
    if "embedding" in answer:
        return embedding_tokens(answer), 0
    usage = answer.get("usageMetadata")
    if not isinstance(usage, dict):
        return 0, 0
    made = token_count(usage.get("candidatesTokenCount")) + token_count(usage.get("thoughtsTokenCount"))
    return token_count(usage.get("promptTokenCount")), made


def embedding_of(body: bytes) -> list[float] | None:
    """The vector of a stored succeeded embedding body (an `EmbedContentResponse`); None when it holds none."""
    try:
        embedding = orjson.loads(body).get("embedding")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return vector_of(embedding.get("values") if isinstance(embedding, dict) else None)


def embedding_tokens(answer: Mapping[str, Any]) -> int:
    """The input tokens an embedding answer reports: `tokenCount` (google-genai's `SingleEmbedContentResponse`), or
    `usageMetadata.promptTokenCount` (`EmbeddingUsageMetadata`); an int64 may come as a string. 0 when none."""
    for value in (answer.get("tokenCount"), as_dict(answer.get("usageMetadata")).get("promptTokenCount")):
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:  # "²" is a digit too
            value = int(value)
        if token_count(value) > 0:
            return token_count(value)
    return 0

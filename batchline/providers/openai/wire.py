"""The OpenAI Batch API's JSON, read and written: URLs, input lines, Batch objects and result lines. No I/O here.

Requests are Responses API bodies (pydantic-ai's `OpenAIResponsesModel.batch_encode`), a line each of a JSONL input
file run against `/v1/responses`. Results are the output and error files' lines, stored as pydantic-ai's
`batch_decode` reads them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import orjson

from ..._json import dumps
from ...errors import BatchInputError, MalformedAnswer
from ...raw import RawRequest
from ...records import ReadResult, Tokens, token_count
from ..base import UNUSABLE, Encoded, Snapshot, State, as_dict, count_of, created_snapshot_of, vector_of

if TYPE_CHECKING:
    from pydantic_ai.models.batch import BatchResultStatus

DEFAULT_BASE_URL = "https://api.openai.com/v1"
ENDPOINT = "/v1/responses"
BATCHES = "/batches"
MAX_REQUESTS = 50_000
MAX_BYTES = 200_000_000
"""The input file's limit."""
_LINE_HEAD = b'{"custom_id":'
_LINE_MID = b',"method":"POST","url":"' + ENDPOINT.encode() + b'","body":'

STATES: dict[str, State] = {
    "validating": "running",
    "in_progress": "running",
    "finalizing": "running",
    "cancelling": "cancelling",
    "completed": "completed",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
}
FIND_PAGE = 100
"""Batches per page when listing them to find one (the most OpenAI gives)."""
ENDPOINTS = frozenset({"/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/moderations"})
"""The endpoints an OpenAI batch runs, which raw input lines may name."""
EMBEDDINGS = "/v1/embeddings"
UNRUN: dict[str, BatchResultStatus] = {"batch_expired": "expired", "batch_cancelled": "canceled"}
"""Error-file codes of requests the batch ended before running."""


# -- requests ---------------------------------------------------------------------------------------------------------
def raw_request(request: RawRequest) -> Encoded:
    """A line of an OpenAI batch input file, kept as it is: its endpoint and model make its group."""
    if request.url not in ENDPOINTS:
        raise BatchInputError(
            f"request {request.custom_id!r}: url {request.url!r} is not an OpenAI batch endpoint "
            f"({', '.join(sorted(ENDPOINTS))})."
        )
    model = request.body.get("model")
    if not isinstance(model, str) or not model:
        raise BatchInputError(f"request {request.custom_id!r}: its body names no model.")
    return Encoded(request.custom_id, dumps(request.body), group=f"{request.url} {model}")


def embedding_request(custom_id: str, model: str, text: str, dimensions: int | None = None) -> Encoded:
    """One embedding input as a `/v1/embeddings` line of its own: its vector comes back under its custom_id. Its group
    is the one raw `/v1/embeddings` lines of the model get, so a part runs against that endpoint."""
    body: dict[str, Any] = {"model": model, "input": text, "encoding_format": "float"}
    if dimensions is not None:
        body["dimensions"] = dimensions
    return Encoded(custom_id, dumps(body), group=f"{EMBEDDINGS} {model}")


def line_size(request: Encoded) -> int:
    """The bytes its line (and newline) adds to the input file, which OpenAI limits to 200 MB."""
    return len(_LINE_HEAD) + len(orjson.dumps(request.custom_id)) + len(_LINE_MID) + len(request.body) + 2


def endpoint_of(group: str) -> str:
    """The endpoint a part runs against: raw parts name theirs in their group (`/v1/... model`)."""
    return group.partition(" ")[0] if group.startswith("/v1/") else ENDPOINT


def input_lines(requests: Iterable[tuple[str, bytes]], endpoint: str = ENDPOINT) -> Iterator[bytes]:
    """The batch input file, a line per request, as pydantic-ai writes it."""
    middle = _LINE_MID if endpoint == ENDPOINT else b',"method":"POST","url":"' + endpoint.encode() + b'","body":'
    for custom_id, body in requests:
        yield b"".join((_LINE_HEAD, orjson.dumps(custom_id), middle, body, b"}\n"))


# -- batches ----------------------------------------------------------------------------------------------------------
def created_snapshot(content: bytes) -> Snapshot:
    return created_snapshot_of(content, "openai", to_snapshot)


def to_snapshot(batch: object) -> Snapshot:
    """A Batch object as a `Snapshot`; `MalformedAnswer` when it is not one (not an object, no id, no status)."""
    if not isinstance(batch, dict) or not isinstance(batch.get("id"), str) or not batch["id"]:
        raise MalformedAnswer(f"openai: a batch answer is not a Batch object ({type(batch).__name__})")
    status = batch.get("status")
    if not isinstance(status, str):
        raise MalformedAnswer(f"openai: batch {batch['id'][:80]!r} answered without a status")
    state = STATES.get(status, "running")  # a status added later is one the batch has not ended in
    raw_counts = batch.get("request_counts")
    counts: dict[str, Any] = raw_counts if isinstance(raw_counts, dict) else {}
    data = as_dict(batch.get("errors")).get("data")
    errors = [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []
    details: dict[str, Any] = {
        key: batch[key]
        for key in ("input_file_id", "output_file_id", "error_file_id")
        if isinstance(batch.get(key), str) and batch[key]
    }
    if errors:
        details["errors"] = errors
    error = None
    if state == "failed":
        error = "; ".join(f"{e.get('code') or 'error'}: {e.get('message') or ''}".strip() for e in errors) or None
    return Snapshot(
        id=str(batch["id"]),
        status=status,
        state=state,
        total=count_of(counts.get("total")),
        completed=count_of(counts.get("completed")),
        failed=count_of(counts.get("failed")),
        error=error,
        details=details,
    )


# -- results ----------------------------------------------------------------------------------------------------------
def result_of(line: object) -> tuple[str, str, bytes]:
    """An output or error file line as `(custom_id, status, body)`, the body being what `batch_decode` reads.

    A line with no string custom_id is `UNUSABLE`: stored under no made-up key."""
    return read_result(line)[:3]


def read_result(line: object) -> ReadResult:
    """`result_of`, with a succeeded body's tokens (`usage_of`) read from the line already parsed."""
    if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
        return UNUSABLE, "no custom_id", b"", None
    custom_id: str = line["custom_id"]
    response = line.get("response")
    if isinstance(response, dict):
        code = response.get("status_code")
        if isinstance(code, int) and 200 <= code < 300:
            body = response.get("body")
            return custom_id, "succeeded", dumps(body), _tokens(body)
        # A rejected request: its error is inside `response.body`, and `error` is null.
        return custom_id, "errored", dumps({"status_code": code or 500, "body": response.get("body")}), None
    error: dict[str, Any] = line["error"] if isinstance(line.get("error"), dict) else {}
    if unrun := UNRUN.get(str(error.get("code"))):
        return custom_id, unrun, b"", None
    wrapped = {"error": {"code": error.get("code"), "message": error.get("message")}}
    return custom_id, "errored", orjson.dumps({"status_code": 500, "body": wrapped}), None


def unrun_error(batch: Snapshot) -> bytes:
    """The errored body of a request that a failed (or otherwise ended) batch never ran: the errors pydantic-ai would
    give it."""
    if batch.state == "failed":
        errors = batch.details.get("errors") or [
            {"code": "batch_rejected", "message": batch.error or f"OpenAI refused batch {batch.id or '(none)'}."}
        ]
        return orjson.dumps({"status_code": 400, "body": {"errors": errors}})
    message = f"OpenAI ended batch {batch.id} ({batch.status}) without a result for this request."
    return orjson.dumps({"status_code": 500, "body": {"error": {"code": "missing_result", "message": message}}})


def export_line(custom_id: str, status: str, body: bytes) -> bytes:
    """A line as OpenAI's output or error file writes it. The line id is made from the custom_id (batchline keeps no
    per-line ids), and `request_id` is empty."""
    line_id = "batch_req_" + hashlib.sha256(custom_id.encode()).hexdigest()[:32]
    response: object = None
    error: object = None
    if status == "succeeded":
        response = {"status_code": 200, "request_id": "", "body": orjson.Fragment(body)}
    elif status == "errored":
        stored = orjson.loads(body)
        response = {"status_code": stored.get("status_code", 500), "request_id": "", "body": stored.get("body")}
    else:
        code = "batch_expired" if status == "expired" else "batch_cancelled"
        error = {"code": code, "message": f"The batch {status} before this request ran."}
    return orjson.dumps({"id": line_id, "custom_id": custom_id, "response": response, "error": error})


def usage_of(body: bytes) -> tuple[int, int]:
    """`(input, output)` tokens of a stored succeeded body: a Responses (`input_tokens`) or Chat Completions
    (`prompt_tokens`) answer's `usage`; (0, 0) when it has none."""
    try:
        return _tokens(orjson.loads(body))
    except orjson.JSONDecodeError:
        return 0, 0


def _tokens(answer: object) -> Tokens:
    usage = answer.get("usage") if isinstance(answer, dict) else None
    if not isinstance(usage, dict):
        return 0, 0
    given = usage.get("input_tokens", usage.get("prompt_tokens"))
    made = usage.get("output_tokens", usage.get("completion_tokens"))
    return token_count(given), token_count(made)


def embedding_of(body: bytes) -> list[float] | None:
    """The vector of a stored succeeded `/v1/embeddings` body (its first input's); None when it holds none."""
    try:
        items = orjson.loads(body).get("data")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    first = items[0] if isinstance(items, list) and items else None
    return vector_of(first.get("embedding") if isinstance(first, dict) else None)

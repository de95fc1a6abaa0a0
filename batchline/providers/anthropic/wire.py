"""The Message Batches API's JSON, read and written: ids, the create body, batch objects and result lines. No I/O.

Message Batches take only custom_ids matching `^[a-zA-Z0-9_-]{1,64}$`: any other id is sent as a hash of itself
(`safe_id`), and the transport maps it back. Beta flags are a header of the whole batch: a stored body that needs
them carries them in front (`BETAS_MARK`), put there by the codec and taken off by `create_body`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ..._json import dumps
from ...errors import BatchInputError, MalformedAnswer
from ...raw import RawRequest
from ...records import ReadResult, Tokens, token_count
from ..base import UNUSABLE, Encoded, Snapshot, State, count_of, created_snapshot_of

if TYPE_CHECKING:
    from pydantic_ai.models.batch import BatchRequest

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
BATCHES = "/v1/messages/batches"
SAFE_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
MAPPED_PREFIX = "bl_"
ENVELOPE = b'{"requests":[]}'
_ITEM = b'{"custom_id":,"params":},'
MAX_REQUESTS = 100_000
MAX_BYTES = 256_000_000 - len(ENVELOPE)
"""256 MB for the whole create body, of which the envelope around the requests takes a few bytes."""
BETAS_KEY = "__batchline_betas__"
BETAS_MARK = b'{"' + BETAS_KEY.encode() + b'":'
"""How a stored body that carries its betas begins (the codec writes it, `create_body` takes it off)."""
RESULT_STATUSES = frozenset({"succeeded", "errored", "canceled", "expired"})
STATES: dict[str, State] = {"in_progress": "running", "canceling": "cancelling"}


# -- requests ---------------------------------------------------------------------------------------------------------
def safe_id(custom_id: str) -> str:
    """The id Anthropic gets: the user's own when it is allowed, else a hash of it (same id, same hash)."""
    if SAFE_ID.fullmatch(custom_id):
        return custom_id
    return MAPPED_PREFIX + hashlib.sha256(custom_id.encode()).hexdigest()[:48]


def check_mapped_ids(requests: Sequence[BatchRequest]) -> None:
    """Refuse a custom_id equal to the hash another custom_id of the job is sent as: the two could not be told apart."""
    mapped = {safe_id(r.custom_id) for r in requests if not SAFE_ID.fullmatch(r.custom_id)}
    if clash := next((r.custom_id for r in requests if r.custom_id in mapped), None):
        raise BatchInputError(
            f"custom_id {clash!r} is the id batchline sends to Anthropic in place of another custom_id of this "
            "job; rename it."
        )


def with_betas(body: bytes, betas: Sequence[str]) -> bytes:
    """A params body that carries its beta flags in front, until `create_body` takes them off."""
    return BETAS_MARK + orjson.dumps(",".join(betas)) + b"," + body[1:] if betas else body


def raw_request(request: RawRequest) -> Encoded:
    """An Anthropic `{custom_id, params}` line, kept as it is: each may name its own model."""
    if request.url is not None:
        raise BatchInputError(f"request {request.custom_id!r} is an OpenAI batch line, not an Anthropic one.")
    for field in ("model", "max_tokens", "messages"):
        if field not in request.body:
            raise BatchInputError(f"request {request.custom_id!r}: its params have no {field!r}.")
    return Encoded(request.custom_id, dumps(request.body))


def item_size(request: Encoded) -> int:
    """The bytes its item (and comma) adds to the create body, as pydantic-ai counts them."""
    return len(_ITEM) + len(orjson.dumps(safe_id(request.custom_id))) + len(request.body)


def create_body(requests: Iterable[tuple[str, bytes]], mapped: dict[str, str], betas: list[str]) -> Iterator[bytes]:
    """`{"requests": [{"custom_id", "params"}, ...]}` a request at a time; fills `mapped` and `betas` on the way."""
    yield b'{"requests":['
    for index, (custom_id, body) in enumerate(requests):
        sent = safe_id(custom_id)
        if sent != custom_id:
            mapped[sent] = custom_id
        if body.startswith(BETAS_MARK):
            params = orjson.loads(body)
            found = params.pop(BETAS_KEY)
            if not betas:
                betas.append(found)
            body = orjson.dumps(params)
        yield b"".join((b"," if index else b"", b'{"custom_id":', orjson.dumps(sent), b',"params":', body, b"}"))
    yield b"]}"


# -- batches ----------------------------------------------------------------------------------------------------------
def created_snapshot(content: bytes) -> Snapshot:
    return created_snapshot_of(content, "anthropic", to_snapshot)


def to_snapshot(batch: object) -> Snapshot:
    """A Message Batch as a `Snapshot`; `MalformedAnswer` when it is not one (not an object, no id, no status)."""
    if not isinstance(batch, dict) or not isinstance(batch.get("id"), str) or not batch["id"]:
        raise MalformedAnswer(f"anthropic: a batch answer is not a Message Batch object ({type(batch).__name__})")
    status = batch.get("processing_status")
    if not isinstance(status, str):
        raise MalformedAnswer(f"anthropic: batch {batch['id'][:80]!r} answered without a processing_status")
    raw_counts = batch.get("request_counts")
    counts = {str(k): count_of(v) for k, v in raw_counts.items()} if isinstance(raw_counts, dict) else {}
    state: State = STATES.get(status, "running")
    if status == "ended":
        if counts.get("canceled") or batch.get("cancel_initiated_at"):
            state = "cancelled"
        elif counts.get("expired"):
            state = "expired"  # the work done is returned; the rest expired
        else:
            state = "completed"
    url = batch.get("results_url")
    details = {"results_url": url} if isinstance(url, str) and url else {}
    return Snapshot(
        id=str(batch["id"]),
        status=status,
        state=state,
        total=sum(counts.values()),
        completed=counts.get("succeeded", 0),
        failed=counts.get("errored", 0) + counts.get("canceled", 0) + counts.get("expired", 0),
        details=details,
    )


# -- results ----------------------------------------------------------------------------------------------------------
def result_of(line: object) -> tuple[str, str, bytes]:
    """A results line as `(custom_id, status, body)`: the `result` object is what `batch_decode` reads.

    A line with no string custom_id, or no `result` object, is `UNUSABLE`: stored under no made-up key."""
    return read_result(line)[:3]


def read_result(line: object) -> ReadResult:
    """`result_of`, with a succeeded result's tokens (`usage_of`) read from the line already parsed."""
    if (
        not isinstance(line, dict)
        or not isinstance(line.get("custom_id"), str)
        or not isinstance(line.get("result"), dict)
    ):
        return UNUSABLE, "no result", b"", None
    result: dict[str, Any] = line["result"]
    kind = str(result.get("type"))
    status = kind if kind in RESULT_STATUSES else "errored"
    if status == "succeeded":
        return line["custom_id"], status, dumps(result), _tokens(result)
    return line["custom_id"], status, dumps(result) if status == "errored" else b"", None


def unrun_error(batch: Snapshot) -> bytes:
    """The errored result of a request a failed (or otherwise ended) batch never ran, in Anthropic's own (doubly
    nested) shape."""
    if batch.state == "failed":
        kind, message = "invalid_request_error", batch.error or "Anthropic refused the batch."
    else:
        kind, message = "api_error", f"Anthropic ended batch {batch.id} without a result for this request."
    return orjson.dumps({"type": "errored", "error": {"type": "error", "error": {"type": kind, "message": message}}})


def export_line(custom_id: str, status: str, body: bytes) -> bytes:
    """A line as Anthropic's results file writes it (the stored body is the `result` object as received)."""
    result = orjson.Fragment(body) if body else {"type": status}
    return orjson.dumps({"custom_id": custom_id, "result": result})


def usage_of(body: bytes) -> tuple[int, int]:
    """`(input, output)` tokens of a stored succeeded body (the line's `result`): its `message.usage`, the input
    counting cache reads and writes as pydantic-ai does; (0, 0) when it has none."""
    try:
        return _tokens(orjson.loads(body))
    except orjson.JSONDecodeError:
        return 0, 0


def _tokens(result: object) -> Tokens:
    message = result.get("message") if isinstance(result, dict) else None
    usage = message.get("usage") if isinstance(message, dict) else None
    if not isinstance(usage, dict):
        return 0, 0
    keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    return sum(token_count(usage.get(key)) for key in keys), token_count(usage.get("output_tokens"))

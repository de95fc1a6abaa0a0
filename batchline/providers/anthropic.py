"""The Anthropic Message Batches adapter (`anthropic:` models).

Requests are Messages API params made by pydantic-ai's `AnthropicModel.batch_encode`, in anthropic_codec.py (which a
worker, moving bytes only, never imports). Each request may name its own model (the `model` option), so models mix in
one batch; only the beta flags, a batch-wide header, split batches. Message Batches take only custom_ids matching
`^[a-zA-Z0-9_-]{1,64}$`: any other id is sent as a hash of itself and mapped back from a Redis hash written with the
batch id. Anthropic batches cannot be found by listing (no metadata), so nothing slow stands between the create call
and the pipeline recording its id.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any, ClassVar, cast

import orjson

from .._json import dumps
from ..errors import BatchInputError, BrokenDownload, MalformedAnswer, ProviderRejected
from ..raw import RawRequest
from ._jsonl import FileChunks, iter_json_lines, spooled
from .base import (
    UNUSABLE,
    Encoded,
    Provider,
    ProviderContext,
    Snapshot,
    State,
    count_of,
    created_snapshot_of,
    json_answer,
    path_id,
)
from .http import ProviderHTTP

if TYPE_CHECKING:  # the codec side (anthropic_codec) imports them; a worker moving bytes never does
    from pydantic_ai.messages import ModelResponse
    from pydantic_ai.models.batch import BatchRequest

    from ..records import StoredResult

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
BATCHES = "/v1/messages/batches"
SAFE_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
MAPPED_PREFIX = "bl_"
_ENVELOPE = b'{"requests":[]}'
_ITEM = b'{"custom_id":,"params":},'
_BETAS_KEY = "__batchline_betas__"
BETAS_MARK = b'{"' + _BETAS_KEY.encode() + b'":'
"""How a stored body that carries its betas begins (anthropic_codec writes it, `create` takes it off)."""
RESULT_STATUSES = frozenset({"succeeded", "errored", "canceled", "expired"})
STATES: dict[str, State] = {"in_progress": "running", "canceling": "cancelling"}


def safe_id(custom_id: str) -> str:
    """The id Anthropic gets: the user's own when it is allowed, else a hash of it (same id, same hash)."""
    if SAFE_ID.fullmatch(custom_id):
        return custom_id
    return MAPPED_PREFIX + hashlib.sha256(custom_id.encode()).hexdigest()[:48]


def _check_mapped_ids(requests: Sequence[BatchRequest]) -> None:
    """Refuse a custom_id equal to the hash another custom_id of the job is sent as: the two could not be told apart."""
    mapped = {safe_id(r.custom_id) for r in requests if not SAFE_ID.fullmatch(r.custom_id)}
    if clash := next((r.custom_id for r in requests if r.custom_id in mapped), None):
        raise BatchInputError(
            f"custom_id {clash!r} is the id batchline sends to Anthropic in place of another custom_id of this "
            "job; rename it."
        )


class AnthropicProvider(Provider):
    name = "anthropic"
    max_requests = 100_000
    max_bytes = 256_000_000 - len(_ENVELOPE)
    """256 MB for the whole create body, of which the envelope around the requests takes a few bytes."""
    can_find = False
    request_models: ClassVar[bool] = True
    """A request may name its own model, and models mix in one batch."""

    def __init__(self, model_name: str, context: ProviderContext | None = None) -> None:
        super().__init__(model_name, context)
        self._http: ProviderHTTP | None = None

    # -- codec ------------------------------------------------------------------------------------------------------
    def encode(self, request: BatchRequest) -> Encoded:
        return self.encode_many([request])[0]

    def encode_many(self, requests: Sequence[BatchRequest]) -> list[Encoded]:
        from .anthropic_codec import encode_many  # pydantic-ai and the SDK load only where requests are encoded

        encoded = encode_many(self.model_name, requests)
        _check_mapped_ids(requests)
        return encoded

    def encode_raw(self, request: RawRequest) -> Encoded:
        """An Anthropic `{custom_id, params}` line, kept as it is: each may name its own model."""
        if request.url is not None:
            raise BatchInputError(f"request {request.custom_id!r} is an OpenAI batch line, not an Anthropic one.")
        for field in ("model", "max_tokens", "messages"):
            if field not in request.body:
                raise BatchInputError(f"request {request.custom_id!r}: its params have no {field!r}.")
        return Encoded(request.custom_id, dumps(request.body))

    def export_line(self, custom_id: str, status: str, body: bytes) -> bytes:
        """A line as Anthropic's results file writes it (the stored body is the `result` object as received)."""
        result = orjson.Fragment(body) if body else {"type": status}
        return orjson.dumps({"custom_id": custom_id, "result": result})

    def request_size(self, request: Encoded) -> int:
        """The bytes its item (and comma) adds to the create body, as pydantic-ai counts them."""
        return len(_ITEM) + len(orjson.dumps(safe_id(request.custom_id))) + len(request.body)

    def decode(self, result: StoredResult, request: BatchRequest) -> ModelResponse:
        from .anthropic_codec import decode

        return decode(self.model_name, result, request)

    # -- transport --------------------------------------------------------------------------------------------------
    @property
    def http(self) -> ProviderHTTP:
        """The worker's client, made on first use from `ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL`."""
        if self._http is None:
            trusted = self._context.settings.trusted_result_hosts if self._context is not None else ()
            self._http = ProviderHTTP("anthropic", *client_config(os.environ), trusted=trusted)
        return self._http

    def _ids_key(self, batch_id: str) -> str:
        return f"{self.context.prefix}anthropic:ids:{batch_id}"

    def create(
        self, job_id: str, part: int, requests: Iterable[tuple[str, bytes]], count: int, group: str = ""
    ) -> Snapshot:
        http = self.http
        mapped: dict[str, str] = {}
        betas: list[str] = []
        with spooled(_create_body(requests, mapped, betas)) as (file, size):
            headers = {"content-type": "application/json", "content-length": str(size)}
            if betas:
                headers["anthropic-beta"] = betas[0]
            answer = http.request("POST", BATCHES, content=FileChunks(file), headers=headers, idempotent=False)
        snapshot = created_snapshot(answer.content)
        if mapped:
            self._save_ids(snapshot.id, mapped)
        return snapshot

    def _save_ids(self, batch_id: str, mapped: dict[str, str]) -> None:
        key, ttl = self._ids_key(batch_id), self.context.settings.ttl_seconds
        pipe = self.context.redis.pipeline(transaction=True)
        items = list(mapped.items())
        for start in range(0, len(items), 1000):
            pipe.hset(key, mapping=dict(items[start : start + 1000]))
        pipe.expire(key, ttl)
        pipe.execute()

    def status(self, batch_id: str) -> Snapshot:
        batch_id = path_id(batch_id, "batch id", self.name)
        return to_snapshot(_json(self.http.request("GET", f"{BATCHES}/{batch_id}").content))

    def cancel(self, batch_id: str) -> Snapshot:
        try:
            batch_id = path_id(batch_id, "batch id", self.name)
            return to_snapshot(_json(self.http.request("POST", f"{BATCHES}/{batch_id}/cancel").content))
        except ProviderRejected as error:
            snapshot = self.status(batch_id)
            if snapshot.ended or snapshot.state == "cancelling":
                return snapshot  # it ended (or is stopping) before the cancel arrived
            raise error from None

    def results(self, batch: Snapshot) -> Iterator[tuple[str, str, bytes]]:
        if not batch.ended:  # a stale snapshot (a poll raced the one that saw the end): ask again
            batch = self.status(batch.id)
        url = batch.details.get("results_url")
        if not url:
            return
        key = self._ids_key(batch.id)
        has_mapped = bool(self.context.redis.exists(key))
        chunk: list[tuple[str, str, bytes]] = []
        # The URL Anthropic names, never one built here; ProviderHTTP refuses it unless it is on a trusted origin.
        try:
            with self.http.stream("GET", url) as response:
                for line in iter_json_lines(response, f"anthropic: results of {batch.id}"):
                    chunk.append(result_of(line))
                    if len(chunk) == 500:
                        yield from self._original_ids(key, chunk) if has_mapped else chunk
                        chunk = []
        except BrokenDownload:
            # What arrived whole is kept: a body that broke off after its last line (a Content-Length that lied)
            # may have brought every result already.
            yield from self._original_ids(key, chunk) if has_mapped else chunk
            raise
        yield from self._original_ids(key, chunk) if has_mapped else chunk

    def _original_ids(self, key: str, chunk: list[tuple[str, str, bytes]]) -> list[tuple[str, str, bytes]]:
        sent = [custom_id for custom_id, _, _ in chunk if custom_id.startswith(MAPPED_PREFIX)]
        if not sent:
            return chunk
        found = cast(list[bytes | None], self.context.redis.hmget(key, sent))
        back = {s: f.decode() for s, f in zip(sent, found, strict=True) if f is not None}
        return [(back.get(custom_id, custom_id), status, body) for custom_id, status, body in chunk]

    def unrun(self, batch: Snapshot) -> tuple[str, bytes]:
        """Expired and cancelled as such; otherwise an errored result in Anthropic's own (doubly nested) shape."""
        if batch.state in ("expired", "cancelled"):
            return super().unrun(batch)
        if batch.state == "failed":
            kind, message = "invalid_request_error", batch.error or "Anthropic refused the batch."
        else:
            kind, message = "api_error", f"Anthropic ended batch {batch.id} without a result for this request."
        error = {"type": "errored", "error": {"type": "error", "error": {"type": kind, "message": message}}}
        return "errored", orjson.dumps(error)

    def cleanup(self, batch: Snapshot) -> None:
        # The results are stored: the id map has done its work. The batch itself stays for Anthropic's 29 days.
        with suppress(Exception):
            self.context.redis.delete(self._ids_key(batch.id))


def client_config(environ: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """Base URL and headers from the SDK's environment names. The key is checked before any HTTP call."""
    key = environ.get("ANTHROPIC_API_KEY", "").strip()
    if not key:
        raise ProviderRejected(
            "ANTHROPIC_API_KEY is not set in the worker's environment; the anthropic adapter needs it to reach "
            "Message Batches.",
            401,
        )
    base_url = environ.get("ANTHROPIC_BASE_URL", "").strip() or DEFAULT_BASE_URL
    return base_url, {"x-api-key": key, "anthropic-version": API_VERSION}


def _create_body(requests: Iterable[tuple[str, bytes]], mapped: dict[str, str], betas: list[str]) -> Iterator[bytes]:
    """`{"requests": [{"custom_id", "params"}, ...]}` a request at a time; fills `mapped` and `betas` on the way."""
    yield b'{"requests":['
    for index, (custom_id, body) in enumerate(requests):
        sent = safe_id(custom_id)
        if sent != custom_id:
            mapped[sent] = custom_id
        if body.startswith(BETAS_MARK):
            params = orjson.loads(body)
            found = params.pop(_BETAS_KEY)
            if not betas:
                betas.append(found)
            body = orjson.dumps(params)
        yield b"".join((b"," if index else b"", b'{"custom_id":', orjson.dumps(sent), b',"params":', body, b"}"))
    yield b"]}"


def _json(content: bytes) -> Any:
    return json_answer(content, "anthropic")


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


def result_of(line: object) -> tuple[str, str, bytes]:
    """A results line as `(custom_id, status, body)`: the `result` object is what `batch_decode` reads.

    A line with no string custom_id, or no `result` object, is `UNUSABLE`: stored under no made-up key."""
    if (
        not isinstance(line, dict)
        or not isinstance(line.get("custom_id"), str)
        or not isinstance(line.get("result"), dict)
    ):
        return UNUSABLE, "no result", b""
    result: dict[str, Any] = line["result"]
    kind = str(result.get("type"))
    status = kind if kind in RESULT_STATUSES else "errored"
    body = dumps(result) if status in ("succeeded", "errored") else b""
    return line["custom_id"], status, body

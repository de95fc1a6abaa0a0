"""The OpenAI Batch API adapter (`openai:` models), for api.openai.com and compatible hosts (`OPENAI_BASE_URL`).

Requests are Responses API bodies made by pydantic-ai's `OpenAIResponsesModel.batch_encode`, uploaded as a JSONL
file and run against `/v1/responses`; one model per batch, so the model is the group. Every batch carries metadata
naming its job and part, which lets `find` recover a batch whose id was lost. Results stream from the output and
error files line by line, stored as pydantic-ai's `batch_decode` reads them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from .._json import dumps
from ..errors import BatchInputError, MalformedAnswer, ProviderRejected, TransientProviderError
from ..raw import RawRequest
from ._jsonl import iter_json_lines, spooled
from .base import (
    UNUSABLE,
    Encoded,
    Provider,
    ProviderContext,
    Snapshot,
    State,
    as_dict,
    count_of,
    created_snapshot_of,
    json_answer,
    path_id,
)
from .http import ProviderHTTP

if TYPE_CHECKING:  # the codec side (openai_codec) imports them; a worker moving bytes never does
    from pydantic_ai.messages import ModelResponse
    from pydantic_ai.models.batch import BatchRequest, BatchResultStatus

    from ..records import StoredResult

DEFAULT_BASE_URL = "https://api.openai.com/v1"
ENDPOINT = "/v1/responses"
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
UNRUN: dict[str, BatchResultStatus] = {"batch_expired": "expired", "batch_cancelled": "canceled"}
"""Error-file codes of requests the batch ended before running."""


class OpenAIProvider(Provider):
    name = "openai"
    max_requests = 50_000
    max_bytes = 200_000_000
    can_find = True
    request_models: ClassVar[bool] = True
    """A request may name its own model: each model becomes its own batch."""

    def __init__(self, model_name: str, context: ProviderContext | None = None) -> None:
        super().__init__(model_name, context)
        self._http: ProviderHTTP | None = None

    # -- codec ------------------------------------------------------------------------------------------------------
    def encode(self, request: BatchRequest) -> Encoded:
        return self.encode_many([request])[0]

    def encode_many(self, requests: Sequence[BatchRequest]) -> list[Encoded]:
        from .openai_codec import encode_many  # pydantic-ai and the openai SDK load only where requests are encoded

        return encode_many(self.model_name, requests)

    def encode_raw(self, request: RawRequest) -> Encoded:
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

    def export_line(self, custom_id: str, status: str, body: bytes) -> bytes:
        """A line as OpenAI's output or error file writes it. The line id is made from the custom_id (batchline keeps
        no per-line ids), and `request_id` is empty."""
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

    def request_size(self, request: Encoded) -> int:
        """The bytes its line (and newline) adds to the input file, which OpenAI limits to 200 MB."""
        return len(_LINE_HEAD) + len(orjson.dumps(request.custom_id)) + len(_LINE_MID) + len(request.body) + 2

    def decode(self, result: StoredResult, request: BatchRequest) -> ModelResponse:
        from .openai_codec import decode

        return decode(self.model_name, result, request)

    # -- transport --------------------------------------------------------------------------------------------------
    @property
    def http(self) -> ProviderHTTP:
        """The worker's client, made on first use from `OPENAI_API_KEY` and `OPENAI_BASE_URL`."""
        if self._http is None:
            trusted = self._context.settings.trusted_result_hosts if self._context is not None else ()
            self._http = ProviderHTTP("openai", *client_config(os.environ), trusted=trusted)
        return self._http

    def create(
        self, job_id: str, part: int, requests: Iterable[tuple[str, bytes]], count: int, group: str = ""
    ) -> Snapshot:
        http = self.http
        endpoint = group.partition(" ")[0] if group.startswith("/v1/") else ENDPOINT  # raw parts name theirs
        with spooled(input_lines(requests, endpoint)) as (file, _):
            upload = {"file": (f"batchline-{job_id}-{part}.jsonl", file, "application/jsonl")}
            uploaded = _json(http.request("POST", "/files", data={"purpose": "batch"}, files=upload).content)
        file_id = path_id(uploaded.get("id") if isinstance(uploaded, dict) else None, "an input file id", self.name)
        body = {
            "input_file_id": file_id,
            "endpoint": endpoint,
            "completion_window": "24h",
            "metadata": {"batchline_job": job_id, "batchline_part": str(part)},
        }
        try:
            created = created_snapshot(http.request("POST", "/batches", json=body, idempotent=False).content)
        except ProviderRejected:
            self._delete_file(file_id)  # refused: no batch will ever read it
            raise
        # The answer always says `validating`; one read shows at once a batch that already failed or finished.
        try:
            return self.status(created.id)
        except (TransientProviderError, ProviderRejected):
            return created

    def status(self, batch_id: str) -> Snapshot:
        batch_id = path_id(batch_id, "batch id", self.name)
        return to_snapshot(_json(self.http.request("GET", f"/batches/{batch_id}").content))

    def cancel(self, batch_id: str) -> Snapshot:
        try:
            batch_id = path_id(batch_id, "batch id", self.name)
            return to_snapshot(_json(self.http.request("POST", f"/batches/{batch_id}/cancel").content))
        except ProviderRejected as error:
            snapshot = self.status(batch_id)
            if snapshot.ended or snapshot.state == "cancelling":
                return snapshot  # it ended (or is stopping) before the cancel arrived
            raise error from None

    def find(self, job_id: str, part: int) -> Snapshot | None:
        after: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, str | int] = {"limit": FIND_PAGE, **({"after": after} if after else {})}
            page = _json(self.http.request("GET", "/batches", params=params).content)
            if not isinstance(page, dict):
                raise MalformedAnswer("openai: the list of batches is not a JSON object")
            listed = page.get("data")
            for batch in listed if isinstance(listed, list) else []:
                metadata = batch.get("metadata") if isinstance(batch, dict) else None
                if not isinstance(metadata, dict):
                    continue
                if metadata.get("batchline_job") == job_id and metadata.get("batchline_part") == str(part):
                    return to_snapshot(batch)
            last = page.get("last_id")
            if not page.get("has_more") or not last:
                return None
            if not isinstance(last, str) or last in seen:  # a cursor that comes round again would list forever
                raise MalformedAnswer(f"openai: the list of batches pages on with a cursor seen before ({last!r})")
            seen.add(last)
            after = last

    def results(self, batch: Snapshot) -> Iterator[tuple[str, str, bytes]]:
        if not batch.ended:  # a stale snapshot (a poll raced the one that saw the end): ask again
            batch = self.status(batch.id)
        for key in ("output_file_id", "error_file_id"):
            file_id = batch.details.get(key)
            if not file_id:  # `""` is no file too
                continue
            file_id = path_id(file_id, f"an {key.removesuffix('_id').replace('_', ' ')} id", self.name)
            with self.http.stream("GET", f"/files/{file_id}/content") as response:
                for line in iter_json_lines(response, f"openai: file {file_id}"):
                    yield result_of(line)

    def unrun(self, batch: Snapshot) -> tuple[str, bytes]:
        """Expired and cancelled as such; a failed batch gives each request the errors pydantic-ai would."""
        if batch.state in ("expired", "cancelled"):
            return super().unrun(batch)
        if batch.state == "failed":
            errors = batch.details.get("errors") or [
                {"code": "batch_rejected", "message": batch.error or f"OpenAI refused batch {batch.id or '(none)'}."}
            ]
            return "errored", orjson.dumps({"status_code": 400, "body": {"errors": errors}})
        message = f"OpenAI ended batch {batch.id} ({batch.status}) without a result for this request."
        return "errored", orjson.dumps(
            {"status_code": 500, "body": {"error": {"code": "missing_result", "message": message}}}
        )

    def cleanup(self, batch: Snapshot) -> None:
        if not self.context.settings.cleanup_files:
            return
        for key in ("input_file_id", "output_file_id", "error_file_id"):
            if file_id := batch.details.get(key):
                self._delete_file(file_id)

    def _delete_file(self, file_id: str) -> None:
        # Best effort: a file left behind costs storage only, and OpenAI deletes it after 30 days.
        with suppress(TransientProviderError, ProviderRejected):
            self.http.request("DELETE", f"/files/{path_id(file_id, 'file id', self.name)}")


def client_config(environ: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """Base URL and headers from the SDK's environment names. The key is checked before any HTTP call."""
    key = environ.get("OPENAI_API_KEY", "").strip()
    if not key:
        raise ProviderRejected(
            "OPENAI_API_KEY is not set in the worker's environment; the openai adapter needs it for the Batch API.",
            401,
        )
    base_url = environ.get("OPENAI_BASE_URL", "").strip() or DEFAULT_BASE_URL
    headers = {"Authorization": f"Bearer {key}"}
    if ".azure.com" in base_url:
        headers["api-key"] = key  # Azure OpenAI reads its keys from this header
    if organization := environ.get("OPENAI_ORG_ID"):
        headers["OpenAI-Organization"] = organization
    if project := environ.get("OPENAI_PROJECT_ID"):
        headers["OpenAI-Project"] = project
    return base_url, headers


def input_lines(requests: Iterable[tuple[str, bytes]], endpoint: str = ENDPOINT) -> Iterator[bytes]:
    """The batch input file, a line per request, as pydantic-ai writes it."""
    middle = _LINE_MID if endpoint == ENDPOINT else b',"method":"POST","url":"' + endpoint.encode() + b'","body":'
    for custom_id, body in requests:
        yield b"".join((_LINE_HEAD, orjson.dumps(custom_id), middle, body, b"}\n"))


def _json(content: bytes) -> Any:
    return json_answer(content, "openai")


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


def result_of(line: object) -> tuple[str, str, bytes]:
    """An output or error file line as `(custom_id, status, body)`, the body being what `batch_decode` reads.

    A line with no string custom_id is `UNUSABLE`: stored under no made-up key."""
    if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
        return UNUSABLE, "no custom_id", b""
    custom_id: str = line["custom_id"]
    response = line.get("response")
    if isinstance(response, dict):
        code = response.get("status_code")
        if isinstance(code, int) and 200 <= code < 300:
            return custom_id, "succeeded", dumps(response.get("body"))
        # A rejected request: its error is inside `response.body`, and `error` is null.
        return custom_id, "errored", dumps({"status_code": code or 500, "body": response.get("body")})
    error: dict[str, Any] = line["error"] if isinstance(line.get("error"), dict) else {}
    if unrun := UNRUN.get(str(error.get("code"))):
        return custom_id, unrun, b""
    wrapped = {"error": {"code": error.get("code"), "message": error.get("message")}}
    return custom_id, "errored", orjson.dumps({"status_code": 500, "body": wrapped})

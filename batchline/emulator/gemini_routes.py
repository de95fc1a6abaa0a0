"""Gemini: batchGenerateContent (inline or file), batch get/list/cancel/delete, the Files API with resumable upload."""

from __future__ import annotations

import base64
import hashlib
from array import array
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import lifecycle
from .answers_common import AnswerContext
from .answers_gemini import error_entry, field, generate_content_response
from .config import BatchFault, Provider
from .http import JSON, authorized, download, json_body, provider_error, route
from .store import BatchRecord, FileRecord, RequestSet, State, split_lines

_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."
_STATES = {
    "pending": "PENDING",
    "running": "RUNNING",
    "completed": "SUCCEEDED",
    "failed": "FAILED",
    "cancelled": "CANCELLED",
    "expired": "EXPIRED",
}
_DAY = 24 * 3600


def _error(status: int, message: str) -> JSON:
    return provider_error("gemini", status, message)


def timestamp(value: float) -> str:
    moment = datetime.fromtimestamp(value, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}000Z"


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


# Files ---------------------------------------------------------------------------------------------------------------


def file_json(record: FileRecord, request: Request) -> dict[str, Any]:
    short = record.id.removeprefix("files/")
    data: dict[str, Any] = {
        "name": record.id,
        "displayName": record.display_name,
        "mimeType": record.mime_type,
        "sizeBytes": str(record.byte_size()),
        "createTime": timestamp(record.created_at),
        "updateTime": timestamp(record.created_at),
        "expirationTime": timestamp(record.created_at + 2 * _DAY),
        "uri": f"{_base(request)}/v1beta/files/{short}",
        "state": "ACTIVE",
        "source": "UPLOADED" if record.content is not None else "GENERATED",
    }
    if record.content is not None:
        data["sha256Hash"] = base64.b64encode(hashlib.sha256(record.content).hexdigest().encode()).decode()
    else:
        data["downloadUri"] = f"{_base(request)}/download/v1beta/files/{short}:download?alt=media"
    return {k: v for k, v in data.items() if v is not None}


async def upload(request: Request, state: State) -> Response:
    """Both legs of the resumable protocol: `start` (authenticated) and the upload URL's `upload[, finalize]`."""
    session_id = request.query_params.get("upload_id")
    if session_id is None:
        if not authorized("gemini", request):
            return _error(401, "Request is missing required authentication credential. Expected an API key.")
        if request.headers.get("x-goog-upload-protocol") != "resumable" or (
            request.headers.get("x-goog-upload-command") != "start"
        ):
            return _error(400, "Only the resumable upload protocol is supported: send X-Goog-Upload-Command: start.")
        size = int(request.headers.get("x-goog-upload-header-content-length") or 0)
        if size > state.config.limits.gemini_max_file_bytes:
            return _error(400, f"File size {size} exceeds the {state.config.limits.gemini_max_file_bytes} byte limit.")
        body = await json_body(request)
        meta = (body or {}).get("file") or {} if isinstance(body, dict) else {}
        session_id = state.new_id("gemini-upload", length=32)
        state.upload_sessions[session_id] = {
            "data": bytearray(),
            "size": size,
            "meta": meta,
            "mime": request.headers.get("x-goog-upload-header-content-type") or field(meta, "mimeType"),
        }
        url = f"{_base(request)}/upload/v1beta/files?upload_id={session_id}&upload_protocol=resumable"
        return Response(b"", headers={"x-goog-upload-url": url, "x-goog-upload-status": "active"})
    session = state.upload_sessions.get(session_id)
    if session is None:
        return _error(404, "Upload session not found.")
    command = request.headers.get("x-goog-upload-command", "")
    offset = int(request.headers.get("x-goog-upload-offset") or 0)
    if offset != len(session["data"]):
        return _error(400, f"Invalid upload offset {offset}; {len(session['data'])} bytes received so far.")
    session["data"] += await request.body()
    if "finalize" not in command:
        return Response(b"", headers={"x-goog-upload-status": "active"})
    del state.upload_sessions[session_id]
    meta = session["meta"]
    name = meta.get("name") or "files/" + state.new_id("gemini-file", length=12)
    record = FileRecord(
        id=name,
        provider="gemini",
        purpose="upload",
        filename=name,
        created_at=state.now(),
        content=bytes(session["data"]),
        mime_type=session["mime"] or "application/octet-stream",
        display_name=field(meta, "displayName"),
    )
    state.files[record.id] = record
    state.count_created("gemini", "files")
    return JSON({"file": file_json(record, request)}, headers={"x-goog-upload-status": "final"})


def _file(state: State, short: str) -> FileRecord | None:
    record = state.files.get(f"files/{short}")
    return record if record is not None and record.provider == "gemini" else None


async def get_file(request: Request, state: State) -> Response:
    record = _file(state, request.path_params["name"])
    if record is None:
        return _error(404, f"File files/{request.path_params['name']} not found.")
    return JSON(await run_in_threadpool(file_json, record, request))


async def delete_file(request: Request, state: State) -> Response:
    record = _file(state, request.path_params["name"])
    if record is None:
        return _error(404, f"File files/{request.path_params['name']} not found.")
    del state.files[record.id]
    return JSON({})


async def list_files(request: Request, state: State) -> Response:
    records = [f for f in reversed(state.files.values()) if f.provider == "gemini"]
    page, token = _paginate(records, request)
    data: dict[str, Any] = {"files": [await run_in_threadpool(file_json, f, request) for f in page]}
    if token:
        data["nextPageToken"] = token
    return JSON(data)


async def download_file(request: Request, state: State) -> Response:
    record = _file(state, request.path_params["name"])
    if record is None:
        return _error(404, f"File files/{request.path_params['name']} not found.")
    return download(request, record.chunks, record.byte_size, record.mime_type)


def _paginate(items: list[Any], request: Request) -> tuple[list[Any], str | None]:
    size = int(request.query_params.get("pageSize") or 50)
    start = int(request.query_params.get("pageToken") or 0)
    page = items[start : start + size]
    return page, str(start + size) if start + size < len(items) else None


# Batches -------------------------------------------------------------------------------------------------------------


def _inline_requests(items: list[Any]) -> RequestSet:
    lines: list[bytes] = []
    spans: list[tuple[int, int]] = []
    keys: list[str] = []
    offset = 0
    for index, item in enumerate(items):
        request = item.get("request", {}) if isinstance(item, dict) else {}
        key = ((item.get("metadata") or {}) if isinstance(item, dict) else {}).get("key")
        line = orjson.dumps({"key": str(key) if key is not None else str(index), "request": request})
        spans.append((offset, offset + len(line)))
        offset += len(line) + 1
        lines.append(line)
        keys.append(str(key) if key is not None else str(index))
    return RequestSet.from_lines(spans, b"\n".join(lines), keys)


def _file_requests(data: bytes) -> tuple[RequestSet | None, str | None]:
    spans = split_lines(data)
    keys: list[str] = []
    for number, (start, end) in enumerate(spans, start=1):
        try:
            line = orjson.loads(data[start:end])
        except orjson.JSONDecodeError:
            return None, f"Line {number} of the input file is not valid JSON."
        if not isinstance(line, dict) or not isinstance(line.get("request"), dict):
            return None, f"Line {number} of the input file has no 'request' object."
        keys.append(str(line.get("key", number - 1)))
    if not spans:
        return None, "The input file is empty."
    return RequestSet.from_lines(spans, data, keys), None


async def create_batch(request: Request, state: State) -> Response:
    model = "models/" + request.path_params["model"].removeprefix("models/")
    data = await request.body()
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _error(400, "Invalid JSON payload received.")
    batch_spec = body.get("batch") if isinstance(body, dict) else None
    config = batch_spec.get("inputConfig") if isinstance(batch_spec, dict) else None
    if not isinstance(batch_spec, dict) or not isinstance(config, dict):
        return _error(400, "batch.input_config is required.")
    fault = state.take_batch_fault("gemini")
    problem = None
    if "fileName" in config:
        source = state.files.get(str(config["fileName"]))
        if source is None or source.content is None:
            return _error(404, f"File {config['fileName']} not found.")
        requests, problem = await run_in_threadpool(_file_requests, source.content)
        origin = "file"
    else:
        if len(data) > state.config.limits.gemini_max_inline_bytes:
            limit = state.config.limits.gemini_max_inline_bytes
            return _error(400, f"Request payload size exceeds the limit: {limit} bytes.")
        items = ((config.get("requests") or {}).get("requests")) or []
        if not items:
            return _error(400, "batch.input_config.requests must contain at least one request.")
        requests, origin = await run_in_threadpool(_inline_requests, items), "inline"
    if requests is None:
        requests = RequestSet(b"", array("q"), array("q"), [])
        fault = BatchFault(outcome="fail", code="INVALID_ARGUMENT", message=problem or "Invalid input file.")
    chosen = state.request_faults("gemini", requests.custom_ids)
    now = state.now()
    batch = BatchRecord(
        id="batches/" + state.new_id("gemini-batch", length=36),
        provider="gemini",
        created_at=now,
        requests=requests,
        model=model,
        errored=frozenset(chosen),
        fault=fault,
        request_fault_kinds=chosen,
        stage_started=now,
        info={"display_name": batch_spec.get("displayName", ""), "origin": origin},
    )
    state.add_batch(batch)
    return JSON(operation_json(batch, state))


def _stats(batch: BatchRecord, state: State) -> dict[str, str]:
    done = lifecycle.progress(batch, state, state.now())
    failed = batch.errored_among_first(state.config.shuffle_seed, done)
    counts = {
        "requestCount": batch.total,
        "successfulRequestCount": done - failed,
        "failedRequestCount": failed,
        "pendingRequestCount": batch.total - done if batch.outcome in (None, "completed") else 0,
    }
    return {name: str(value) for name, value in counts.items() if value}


def _output(batch: BatchRecord, state: State) -> dict[str, Any] | None:
    if batch.outcome == "failed" or not batch.ended or batch.done == 0:
        return None
    if batch.info["origin"] == "inline":
        if batch.outcome != "completed":
            return None
        items = [orjson.loads(line) for line in _result_lines(batch, state, inline=True)]
        return {"inlinedResponses": {"inlinedResponses": items}}
    name = "files/batch-" + batch.id.removeprefix("batches/")
    if name not in state.files:
        ended = batch.times.get(batch.outcome or "", state.now())
        state.files[name] = FileRecord(
            id=name,
            provider="gemini",
            purpose="batch_output",
            filename=name,
            created_at=ended,
            generate=lambda: _result_lines(batch, state, inline=False),
            display_name=name,
        )
    return {"responsesFile": name}


def operation_json(batch: BatchRecord, state: State) -> dict[str, Any]:
    status = batch.outcome or lifecycle.stage_name(batch)
    updated = max([batch.created_at, *batch.times.values()])
    metadata: dict[str, Any] = {
        "@type": _TYPE + "GenerateContentBatch",
        "model": batch.model,
        "displayName": batch.info["display_name"],
        "createTime": timestamp(batch.created_at),
        "updateTime": timestamp(updated),
    }
    if batch.ended:
        metadata["endTime"] = timestamp(batch.times[batch.outcome or ""])
    metadata.update({"batchStats": _stats(batch, state), "state": "BATCH_STATE_" + _STATES[status], "name": batch.id})
    result: dict[str, Any] = {"name": batch.id, "metadata": metadata}
    output = _output(batch, state)
    if output is not None:
        metadata["output"] = output
    if batch.ended:
        result["done"] = True
        if batch.outcome == "failed" and batch.fault is not None:
            result["error"] = {"code": 3, "message": batch.fault.message}
        else:
            result["response"] = {"@type": _TYPE + "GenerateContentBatchOutput", **(output or {})}
    return result


def _result_lines(batch: BatchRecord, state: State, *, inline: bool) -> Iterator[bytes]:
    ctx = AnswerContext(batch.id, int(batch.created_at), state.config.response_template)
    order = range(batch.total) if inline else batch.order(state.config.shuffle_seed)[: batch.done]
    for index in order:
        key = batch.requests.custom_ids[index]
        fault = batch.request_fault_kinds.get(index)
        item: dict[str, Any] = {} if inline else {"key": key}
        if fault is not None:
            item["error"] = error_entry(fault.kind, fault.message)
        else:
            request = orjson.loads(batch.requests.line(index))["request"]
            item["response"] = generate_content_response(request, key, batch.model or "", ctx)
        yield orjson.dumps(item) + b"\n"


def _batch(state: State, short: str) -> BatchRecord | None:
    batch = state.batches.get(f"batches/{short}")
    return batch if batch is not None and batch.provider == "gemini" else None


def _not_found(short: str) -> JSON:
    return _error(404, f"Batch batches/{short} not found.")


async def get_batch(request: Request, state: State) -> Response:
    batch = _batch(state, request.path_params["name"])
    if batch is None:
        return _not_found(request.path_params["name"])
    lifecycle.advance(batch, state)
    return JSON(await run_in_threadpool(operation_json, batch, state))


async def cancel_batch(request: Request, state: State) -> Response:
    batch = _batch(state, request.path_params["name"])
    if batch is None:
        return _not_found(request.path_params["name"])
    if not lifecycle.cancel(batch, state, immediate=True):
        return _error(400, f"Batch {batch.id} has already ended and cannot be cancelled.")
    return JSON({})


async def delete_batch(request: Request, state: State) -> Response:
    batch = _batch(state, request.path_params["name"])
    if batch is None:
        return _not_found(request.path_params["name"])
    del state.batches[batch.id]
    return JSON({})


async def list_batches(request: Request, state: State) -> Response:
    batches = [b for b in reversed(state.batches.values()) if b.provider == "gemini"]
    page, token = _paginate(batches, request)
    for batch in page:
        lifecycle.advance(batch, state)
    data: dict[str, Any] = {"operations": [operation_json(b, state) for b in page]}
    if token:
        data["nextPageToken"] = token
    return JSON(data)


def routes() -> list[Route]:
    p: Provider = "gemini"
    return [
        route("/upload/v1beta/files", upload, ["POST"], p, auth=False),
        route("/v1beta/files", list_files, ["GET"], p),
        route("/v1beta/files/{name}:download", download_file, ["GET"], p),
        route("/download/v1beta/files/{name}:download", download_file, ["GET"], p),
        route("/v1beta/files/{name}", get_file, ["GET"], p),
        route("/v1beta/files/{name}", delete_file, ["DELETE"], p),
        route("/v1beta/models/{model}:batchGenerateContent", create_batch, ["POST"], p),
        route("/v1beta/batches", list_batches, ["GET"], p),
        route("/v1beta/batches/{name}:cancel", cancel_batch, ["POST"], p),
        route("/v1beta/batches/{name}", get_batch, ["GET"], p),
        route("/v1beta/batches/{name}", delete_batch, ["DELETE"], p),
    ]

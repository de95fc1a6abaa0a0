"""Gemini batch mode: batchGenerateContent and asyncBatchEmbedContent (inline or file), batch get/list/cancel/delete;
the Files API it reads and writes is gemini_files.py."""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import gemini_files, lifecycle
from .answers_common import AnswerContext
from .answers_gemini import embed_content_item, error_entry, field, generate_content_response
from .config import BatchFault, Provider
from .gemini_files import error as _error
from .gemini_files import paginate as _paginate
from .gemini_files import timestamp
from .http import JSON, route
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
    return await _create(request, state, "generate")


async def create_embed_batch(request: Request, state: State) -> Response:
    """`asyncBatchEmbedContent`: an `EmbedContentBatch`, whose input, operation and output have the same shapes."""
    return await _create(request, state, "embed")


async def _create(request: Request, state: State, kind: str) -> Response:
    model = "models/" + request.path_params["model"].removeprefix("models/")
    data = await request.body()
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _error(400, "Invalid JSON payload received.")
    batch_spec = body.get("batch") if isinstance(body, dict) else None
    # Proto JSON: a field may come by its JSON name or its proto name (google-genai sends `file_name`).
    config = field(batch_spec, "inputConfig")
    if not isinstance(batch_spec, dict) or not isinstance(config, dict):
        return _error(400, "batch.input_config is required.")
    fault = state.take_batch_fault("gemini")
    problem = None
    if (file_name := field(config, "fileName")) is not None:
        source = state.files.get(str(file_name))
        if source is None or source.content is None:
            return _error(404, f"File {file_name} not found.")
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
        info={"display_name": field(batch_spec, "displayName") or "", "origin": origin, "kind": kind},
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
    embed = batch.info.get("kind") == "embed"
    metadata: dict[str, Any] = {
        "@type": _TYPE + ("EmbedContentBatch" if embed else "GenerateContentBatch"),
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
            kind = "EmbedContentBatchOutput" if embed else "GenerateContentBatchOutput"
            result["response"] = {"@type": _TYPE + kind, **(output or {})}
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
            if batch.info.get("kind") == "embed":
                item.update(embed_content_item(request, batch.model or ""))
            else:
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
        *gemini_files.routes(),
        route("/v1beta/models/{model}:batchGenerateContent", create_batch, ["POST"], p),
        route("/v1beta/models/{model}:asyncBatchEmbedContent", create_embed_batch, ["POST"], p),
        route("/v1beta/batches", list_batches, ["GET"], p),
        route("/v1beta/batches/{name}:cancel", cancel_batch, ["POST"], p),
        route("/v1beta/batches/{name}", get_batch, ["GET"], p),
        route("/v1beta/batches/{name}", delete_batch, ["DELETE"], p),
    ]

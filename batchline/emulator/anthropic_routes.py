"""Anthropic: `/v1/messages/batches` (create, get, cancel, delete, list) and results served from `results_url`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import lifecycle
from .answers_anthropic import errored, message
from .answers_common import AnswerContext
from .config import Provider
from .http import JSON, download, provider_error, route
from .store import BatchRecord, RequestSet, State

_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_DAY = 24 * 3600


def _error(status: int, text: str) -> JSON:
    return provider_error("anthropic", status, text)


def rfc3339(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="microseconds")


def _parse_requests(data: bytes, max_requests: int) -> tuple[RequestSet | None, str | None]:
    """The batch's requests, one compact JSON line each (`{"custom_id","params"}`), or what is wrong with them."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None, "The request body is not valid JSON."
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list):
        return None, "requests: Field required"
    if not requests:
        return None, "requests: List should have at least 1 item after validation, not 0"
    if len(requests) > max_requests:
        return None, f"requests: List should have at most {max_requests} items after validation, not {len(requests)}"
    lines: list[bytes] = []
    spans: list[tuple[int, int]] = []
    custom_ids: list[str] = []
    seen: set[str] = set()
    offset = 0
    for index, item in enumerate(requests):
        custom_id = item.get("custom_id") if isinstance(item, dict) else None
        if not isinstance(custom_id, str) or not _CUSTOM_ID.fullmatch(custom_id):
            return None, f"requests.{index}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
        if custom_id in seen:
            return None, f"Duplicate custom_id found in requests: {custom_id!r}. Each custom_id must be unique."
        seen.add(custom_id)
        params = item.get("params")
        if not isinstance(params, dict):
            return None, f"requests.{index}.params: Field required"
        for name in ("model", "max_tokens", "messages"):
            if name not in params:
                return None, f"requests.{index}.params.{name}: Field required"
        if params.get("stream"):
            return None, f"requests.{index}.params.stream: Streaming is not supported in Message Batches"
        line = orjson.dumps(params)
        spans.append((offset, offset + len(line)))
        offset += len(line) + 1
        lines.append(line)
        custom_ids.append(custom_id)
    return RequestSet.from_lines(spans, b"\n".join(lines), custom_ids), None


def _results_url(request: Request, batch: BatchRecord) -> str:
    return str(request.base_url).rstrip("/") + f"/v1/messages/batches/{batch.id}/results"


def batch_json(batch: BatchRecord, state: State, request: Request) -> dict[str, Any]:
    total = batch.total
    counts = {"processing": total, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    if batch.ended:
        failed = batch.errored_among_first(state.config.shuffle_seed, batch.done)
        counts = {
            "processing": 0,
            "succeeded": batch.done - failed,
            "errored": failed,
            "canceled": total - batch.done if batch.outcome == "cancelled" else 0,
            "expired": total - batch.done if batch.outcome == "expired" else 0,
        }
    status = "ended" if batch.ended else ("canceling" if batch.cancelling else "in_progress")
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": counts,
        "ended_at": rfc3339(batch.times.get(batch.outcome or "")),
        "created_at": rfc3339(batch.created_at),
        "expires_at": rfc3339(batch.created_at + _DAY),
        "archived_at": None,
        "cancel_initiated_at": rfc3339(batch.times.get("cancelling")),
        "results_url": _results_url(request, batch) if batch.ended else None,
    }


async def create_batch(request: Request, state: State) -> Response:
    data = await request.body()
    limits = state.config.limits
    if len(data) > limits.anthropic_max_bytes:
        return _error(413, f"Request exceeds the maximum allowed number of bytes ({limits.anthropic_max_bytes}).")
    requests, problem = await run_in_threadpool(_parse_requests, data, limits.anthropic_max_requests)
    if requests is None:
        return _error(400, problem or "Invalid request")
    fault = state.take_batch_fault("anthropic")
    if fault is not None and fault.outcome == "fail":
        return _error(400, fault.message)
    chosen = state.request_faults("anthropic", requests.custom_ids)
    now = state.now()
    models = {orjson.loads(requests.line(i)).get("model") for i in range(min(len(requests), 1))}
    batch = BatchRecord(
        id="msgbatch_01" + state.new_mixed_id("anthropic-batch", 22),
        provider="anthropic",
        created_at=now,
        requests=requests,
        model=next(iter(models), None),
        errored=frozenset(chosen),
        fault=fault,
        request_fault_kinds=chosen,
        stage_started=now,
    )
    state.add_batch(batch)
    return JSON(batch_json(batch, state, request))


def _batch(state: State, batch_id: str) -> BatchRecord | None:
    batch = state.batches.get(batch_id)
    return batch if batch is not None and batch.provider == "anthropic" else None


def _not_found(batch_id: str) -> JSON:
    return _error(404, f"Message batch {batch_id!r} not found.")


async def get_batch(request: Request, state: State) -> Response:
    batch = _batch(state, request.path_params["batch_id"])
    if batch is None:
        return _not_found(request.path_params["batch_id"])
    lifecycle.advance(batch, state)
    return JSON(batch_json(batch, state, request))


async def cancel_batch(request: Request, state: State) -> Response:
    batch = _batch(state, request.path_params["batch_id"])
    if batch is None:
        return _not_found(request.path_params["batch_id"])
    if not lifecycle.cancel(batch, state):
        return _error(400, "Batch has already ended and cannot be canceled.")
    return JSON(batch_json(batch, state, request))


async def delete_batch(request: Request, state: State) -> Response:
    batch = _batch(state, request.path_params["batch_id"])
    if batch is None:
        return _not_found(request.path_params["batch_id"])
    if state.config.stage_seconds > 0:  # with instant timing only a read ends a batch, as for cancel
        lifecycle.advance(batch, state)
    if not batch.ended:
        return _error(400, "Batch must be ended before it can be deleted. Cancel it first.")
    del state.batches[batch.id]
    return JSON({"id": batch.id, "type": "message_batch_deleted"})


async def list_batches(request: Request, state: State) -> Response:
    batches = [b for b in reversed(state.batches.values()) if b.provider == "anthropic"]
    query = request.query_params
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        limit = -1
    if not 1 <= limit <= 1000:
        return _error(400, "limit: Input should be between 1 and 1000")
    ids = [b.id for b in batches]
    after, before = query.get("after_id"), query.get("before_id")
    if after:
        rest = batches[ids.index(after) + 1 :] if after in ids else []
        page, has_more = rest[:limit], len(rest) > limit
    elif before:
        rest = batches[: ids.index(before)] if before in ids else []
        page, has_more = rest[-limit:], len(rest) > limit
    else:
        page, has_more = batches[:limit], len(batches) > limit
    for batch in page:
        lifecycle.advance(batch, state)
    return JSON(
        {
            "data": [batch_json(b, state, request) for b in page],
            "has_more": has_more,
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
        }
    )


def _result_lines(batch: BatchRecord, state: State) -> Iterator[bytes]:
    ctx = AnswerContext(batch.id, int(batch.created_at), state.config.response_template)
    unrun = {"cancelled": {"type": "canceled"}, "expired": {"type": "expired"}}.get(batch.outcome or "")
    for position, index in enumerate(batch.order(state.config.shuffle_seed)):
        custom_id = batch.requests.custom_ids[index]
        fault = batch.request_fault_kinds.get(index)
        if position >= batch.done:
            if unrun is None:
                continue
            result: dict[str, Any] = unrun
        elif fault is not None:
            result = errored(fault.kind, fault.message)
        else:
            result = {"type": "succeeded", "message": message(orjson.loads(batch.requests.line(index)), custom_id, ctx)}
        yield orjson.dumps({"custom_id": custom_id, "result": result}) + b"\n"


async def results(request: Request, state: State) -> Response:
    batch = _batch(state, request.path_params["batch_id"])
    if batch is None:
        return _not_found(request.path_params["batch_id"])
    lifecycle.advance(batch, state)
    if not batch.ended:
        return _error(400, f"Message batch {batch.id!r} has not ended; its results are not available yet.")
    size_cache: list[int] = []

    def size() -> int:
        if not size_cache:
            size_cache.append(sum(len(line) for line in _result_lines(batch, state)))
        return size_cache[0]

    return download(request, lambda: _result_lines(batch, state), size, "application/binary")


def routes() -> list[Route]:
    p: Provider = "anthropic"
    return [
        route("/v1/messages/batches", create_batch, ["POST"], p),
        route("/v1/messages/batches", list_batches, ["GET"], p),
        route("/v1/messages/batches/{batch_id}", get_batch, ["GET"], p),
        route("/v1/messages/batches/{batch_id}", delete_batch, ["DELETE"], p),
        route("/v1/messages/batches/{batch_id}/cancel", cancel_batch, ["POST"], p),
        route("/v1/messages/batches/{batch_id}/results", results, ["GET"], p),
    ]

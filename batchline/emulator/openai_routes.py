"""OpenAI: `/v1/files` and `/v1/batches`, with output and error files generated as the Batch API writes them."""

from __future__ import annotations

import dataclasses
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import lifecycle, multipart
from .answers_common import AnswerContext, hex_id
from .answers_openai import answer, error_response
from .config import BatchFault, Provider
from .http import JSON, download, json_body, provider_error, route
from .openai_validate import validate_input
from .store import BatchRecord, FileRecord, RequestSet, State

ENDPOINTS = ("/v1/responses", "/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/v1/moderations")
_DAY = 24 * 3600
_UNRUN = {
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
    "cancelled": ("batch_cancelled", "This request was not executed because the batch was cancelled."),
}


def _error(status: int, message: str, param: str | None = None, code: str | None = None) -> JSON:
    return provider_error("openai", status, message, param=param, code=code)


def file_json(record: FileRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "file",
        "bytes": record.byte_size(),
        "created_at": int(record.created_at),
        "expires_at": int(record.expires_at) if record.expires_at is not None else None,
        "filename": record.filename,
        "purpose": record.purpose,
        "status": "processed",
        "status_details": None,
    }


def _file(state: State, file_id: str) -> FileRecord | None:
    record = state.files.get(file_id)
    return record if record is not None and record.provider == "openai" else None


async def create_file(request: Request, state: State) -> Response:
    try:
        parts = multipart.parse(request.headers.get("content-type", ""), await request.body())
    except ValueError as error:
        return _error(400, f"Invalid multipart body: {error}.")
    purpose = parts["purpose"].data.decode() if "purpose" in parts else None
    if "file" not in parts:
        return _error(400, "Missing required parameter: 'file'.", param="file")
    if not purpose:
        return _error(400, "Missing required parameter: 'purpose'.", param="purpose")
    now = state.now()
    expires_at = None
    if "expires_after[seconds]" in parts:
        expires_at = now + int(parts["expires_after[seconds]"].data)
    upload = parts["file"]
    record = FileRecord(
        id="file-" + state.new_mixed_id("openai-file", 22),
        provider="openai",
        purpose=purpose,
        filename=upload.filename or "upload",
        created_at=now,
        content=upload.data,
        expires_at=expires_at,
    )
    state.files[record.id] = record
    state.count_created("openai", "files")
    return JSON(file_json(record))


async def list_files(request: Request, state: State) -> Response:
    query = request.query_params
    records = [f for f in state.files.values() if f.provider == "openai"]
    if query.get("purpose"):
        records = [f for f in records if f.purpose == query["purpose"]]
    if query.get("order", "desc") == "desc":
        records.reverse()
    return await run_in_threadpool(_page, records, query.get("after"), query.get("limit"), 10_000, 10_000, file_json)


def _page(
    items: list[Any], after: str | None, limit_text: str | None, default: int, most: int, render: Any
) -> Response:
    try:
        limit = int(limit_text) if limit_text else default
    except ValueError:
        limit = -1
    if not 1 <= limit <= most:
        return _error(400, f"Invalid 'limit': must be between 1 and {most}.", param="limit")
    if after:
        ids = [item.id for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    data = [render(item) for item in page]
    return JSON(
        {
            "object": "list",
            "data": data,
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": len(items) > limit,
        }
    )


async def get_file(request: Request, state: State) -> Response:
    record = _file(state, request.path_params["file_id"])
    if record is None:
        return _error(404, f"No such File object: {request.path_params['file_id']}", param="id")
    return JSON(await run_in_threadpool(file_json, record))


async def delete_file(request: Request, state: State) -> Response:
    record = _file(state, request.path_params["file_id"])
    if record is None:
        return _error(404, f"No such File object: {request.path_params['file_id']}", param="id")
    del state.files[record.id]
    return JSON({"id": record.id, "object": "file", "deleted": True})


async def file_content(request: Request, state: State) -> Response:
    record = _file(state, request.path_params["file_id"])
    if record is None:
        return _error(404, f"No such File object: {request.path_params['file_id']}", param="id")
    size = (lambda: len(record.content or b"")) if record.content is not None else record.byte_size
    return download(request, record.chunks, size, "application/octet-stream")


# Batches -------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    """What a batch create accepts: OpenAI's, or an OpenAI-compatible API's (`compat_routes`)."""

    endpoints: tuple[str, ...] = ENDPOINTS
    windows: tuple[str, ...] = ("24h",)
    default_window: str | None = None
    """The window of a create that names none (None: `completion_window` is required)."""
    route_optional: bool = False
    """Whether input lines may leave out `method` and `url`."""
    purposes: tuple[str, ...] = ("batch",)
    max_requests: int | None = None
    """The most lines of an input file (None: the configured OpenAI limit)."""
    max_bytes: int | None = None
    answers_as: tuple[tuple[str, str], ...] = ()
    """Endpoints answered as another (Azure's `/chat/completions` is OpenAI's `/v1/chat/completions`)."""


OPENAI_RULES = Rules()


async def create_batch(request: Request, state: State) -> Response:
    return await create_with(await json_body(request), state, OPENAI_RULES)


async def create_with(body: Any, state: State, rules: Rules) -> Response:
    if not isinstance(body, dict):
        return _error(400, "We could not parse the JSON body of your request.")
    endpoint, window = body.get("endpoint"), body.get("completion_window", rules.default_window)
    input_file_id, metadata = body.get("input_file_id"), body.get("metadata")
    if not isinstance(input_file_id, str) or not input_file_id:
        return _error(400, "Missing required parameter: 'input_file_id'.", param="input_file_id")
    if endpoint not in rules.endpoints:
        choices = ", ".join(rules.endpoints)
        return _error(400, f"Invalid value: {endpoint!r}. Supported values are: {choices}.", "endpoint")
    if window not in rules.windows:
        choices = ", ".join(repr(w) for w in rules.windows)
        return _error(400, f"Invalid value: {window!r}. Supported values are: {choices}.", param="completion_window")
    if metadata is not None and (problem := _metadata_problem(metadata, state.config.limits.openai_max_metadata_pairs)):
        return _error(400, problem, param="metadata")
    source = _file(state, input_file_id)
    if source is None or source.content is None:
        return _error(404, f"No such File object: {input_file_id}", param="input_file_id")
    if source.purpose not in rules.purposes:
        return _error(
            400, f"The file {input_file_id} must be uploaded with purpose {rules.purposes[0]!r}.", "input_file_id"
        )
    limits = state.config.limits
    if rules.max_requests is not None or rules.max_bytes is not None:
        limits = dataclasses.replace(
            limits,
            openai_max_requests=rules.max_requests or limits.openai_max_requests,
            openai_max_bytes=rules.max_bytes or limits.openai_max_bytes,
        )
    validated = await run_in_threadpool(
        lambda: validate_input(source.content or b"", str(endpoint), limits, route_optional=rules.route_optional)
    )
    fault = state.take_batch_fault("openai")
    requests = validated.requests or RequestSet(b"", array("q"), array("q"), [])
    errors = validated.errors
    if errors:
        fault = BatchFault(outcome="fail")
    elif fault is not None and fault.outcome == "fail":
        errors = [{"code": fault.code, "line": None, "message": fault.message, "param": None}]
    chosen = state.request_faults("openai", requests.custom_ids)
    now = state.now()
    batch = BatchRecord(
        id="batch_" + state.new_id("openai-batch", "0123456789abcdef", 32),
        provider="openai",
        created_at=now,
        requests=requests,
        model=validated.model,
        errored=frozenset(chosen),
        fault=fault,
        request_fault_kinds=chosen,
        stage_started=now,
        info={
            "endpoint": endpoint,
            "input_file_id": input_file_id,
            "completion_window": window,
            "metadata": metadata,
            "errors": errors,
            "answers_as": dict(rules.answers_as).get(str(endpoint), endpoint),
        },
    )
    state.add_batch(batch)
    return JSON(batch_json(batch, state))


def _metadata_problem(metadata: Any, most: int) -> str | None:
    if not isinstance(metadata, dict):
        return "Invalid type for 'metadata': expected an object."
    if len(metadata) > most:
        return f"Invalid 'metadata': too many properties. Expected an object with at most {most} properties."
    for key, value in metadata.items():
        if len(key) > 64:
            return "Invalid 'metadata': keys can be at most 64 characters long."
        if not isinstance(value, str) or len(value) > 512:
            return "Invalid 'metadata': values must be strings of at most 512 characters."
    return None


def _status(batch: BatchRecord) -> str:
    if batch.outcome is not None:
        return batch.outcome
    return "cancelling" if batch.cancelling else lifecycle.stage_name(batch)


def batch_json(batch: BatchRecord, state: State) -> dict[str, Any]:
    status = _status(batch)
    seed = state.config.shuffle_seed
    if batch.stage == 0:  # requests are only counted once the input file has validated
        counts = {"total": 0, "completed": 0, "failed": 0}
    else:
        done = lifecycle.progress(batch, state, state.now())
        failed = batch.errored_among_first(seed, done)
        counts = {"total": batch.total, "completed": done - failed, "failed": failed}
    if batch.ended and "output_file_id" not in batch.info:
        _make_result_files(batch, state)
    times = batch.times

    def stamp(name: str) -> int | None:
        return int(times[name]) if name in times else None

    errors = batch.info["errors"]
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.info["endpoint"],
        "errors": {"object": "list", "data": errors} if errors and status == "failed" else None,
        "input_file_id": batch.info["input_file_id"],
        "completion_window": batch.info["completion_window"],
        "status": status,
        "output_file_id": batch.info.get("output_file_id"),
        "error_file_id": batch.info.get("error_file_id"),
        "created_at": int(batch.created_at),
        "in_progress_at": stamp("in_progress"),
        "expires_at": int(batch.created_at + _DAY),
        "finalizing_at": stamp("finalizing"),
        "completed_at": stamp("completed"),
        "failed_at": stamp("failed"),
        "expired_at": stamp("expired"),
        "cancelling_at": stamp("cancelling"),
        "cancelled_at": stamp("cancelled"),
        "request_counts": counts,
        "metadata": batch.info["metadata"],
        "model": batch.model,
    }


def _make_result_files(batch: BatchRecord, state: State) -> None:
    """Name the output and error files of an ended batch; their lines are only written when downloaded."""
    seed = state.config.shuffle_seed
    failed = batch.errored_among_first(seed, batch.done)
    unrun = batch.total - batch.done if batch.outcome in _UNRUN else 0
    ended_at = batch.times.get(batch.outcome or "", state.now())
    for kind, count in (("output", batch.done - failed), ("error", failed + unrun)):
        file_id = None
        if count and batch.outcome != "failed":
            file_id = "file-" + state.new_mixed_id("openai-file", 22)
            state.files[file_id] = FileRecord(
                id=file_id,
                provider="openai",
                purpose="batch_output",
                filename=f"{batch.id}_{kind}.jsonl",
                created_at=ended_at,
                generate=_lines_maker(batch, state, kind),
                expires_at=ended_at + 30 * _DAY,
            )
        batch.info[f"{kind}_file_id"] = file_id


def _lines_maker(batch: BatchRecord, state: State, kind: str) -> Any:
    template, seed = state.config.response_template, state.config.shuffle_seed

    def generate() -> Iterator[bytes]:
        ctx = AnswerContext(batch.id, int(batch.times.get("in_progress", batch.created_at)), template)
        order = batch.order(seed)
        for position, index in enumerate(order):
            custom_id = batch.requests.custom_ids[index]
            line_id = "batch_req_" + hex_id(32, batch.id, custom_id)
            request_id = hex_id(32, "request", batch.id, custom_id)
            if position >= batch.done:
                if kind == "error" and batch.outcome in _UNRUN:
                    code, message = _UNRUN[batch.outcome]
                    error = {"code": code, "message": message}
                    yield orjson.dumps({"id": line_id, "custom_id": custom_id, "response": None, "error": error})
                    yield b"\n"
                continue
            fault = batch.request_fault_kinds.get(index)
            if (fault is None) != (kind == "output"):
                continue
            if fault is not None:
                status, body = error_response(fault.kind, fault.message)
            else:
                status = 200
                body = answer(
                    batch.info.get("answers_as", batch.info["endpoint"]),
                    orjson.loads(batch.requests.line(index))["body"],
                    custom_id,
                    ctx,
                )
            response = {"status_code": status, "request_id": request_id, "body": body}
            yield orjson.dumps({"id": line_id, "custom_id": custom_id, "response": response, "error": None})
            yield b"\n"

    return generate


def _batch(state: State, batch_id: str) -> BatchRecord | None:
    batch = state.batches.get(batch_id)
    return batch if batch is not None and batch.provider == "openai" else None


async def get_batch(request: Request, state: State) -> Response:
    batch = _batch(state, request.path_params["batch_id"])
    if batch is None:
        return _error(404, f"No batch found with id '{request.path_params['batch_id']}'.")
    lifecycle.advance(batch, state)
    return JSON(batch_json(batch, state))


async def cancel_batch(request: Request, state: State) -> Response:
    batch = _batch(state, request.path_params["batch_id"])
    if batch is None:
        return _error(404, f"No batch found with id '{request.path_params['batch_id']}'.")
    if not lifecycle.cancel(batch, state):
        return _error(400, f"Cannot cancel a batch with status '{_status(batch)}'.")
    return JSON(batch_json(batch, state))


async def list_batches(request: Request, state: State) -> Response:
    batches = [b for b in reversed(state.batches.values()) if b.provider == "openai"]
    for batch in batches:
        lifecycle.advance(batch, state)
    query = request.query_params
    return _page(batches, query.get("after"), query.get("limit"), 20, 100, lambda b: batch_json(b, state))


def routes() -> list[Route]:
    p: Provider = "openai"
    return [
        route("/v1/files", create_file, ["POST"], p),
        route("/v1/files", list_files, ["GET"], p),
        route("/v1/files/{file_id}/content", file_content, ["GET"], p),
        route("/v1/files/{file_id}", get_file, ["GET"], p),
        route("/v1/files/{file_id}", delete_file, ["DELETE"], p),
        route("/v1/batches", create_batch, ["POST"], p),
        route("/v1/batches", list_batches, ["GET"], p),
        route("/v1/batches/{batch_id}", get_batch, ["GET"], p),
        route("/v1/batches/{batch_id}/cancel", cancel_batch, ["POST"], p),
    ]

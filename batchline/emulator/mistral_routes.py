"""Mistral: `/v1/files` and `/v1/batch/jobs`, served under `/mistral` (its paths would clash with OpenAI's files on
one port), so a client's base URL is `<emulator>/mistral`.

Mistral's differences from OpenAI, as its API and SDK show them: a job names its model and may read several input
files; input lines are `{"custom_id", "body"}` (no method or url); statuses are QUEUED, RUNNING, SUCCESS, FAILED,
TIMEOUT_EXCEEDED, CANCELLATION_REQUESTED and CANCELLED; counts are flat (`total_requests`, `succeeded_requests`, ...);
jobs are listed by page (`page`, `page_size`, `total`); errors are flat `{"object": "error", "message", ...}`; a
malformed create is a 422 with `detail`. Requests a job never ran have no line in its files.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import lifecycle, multipart
from .answers_common import AnswerContext, hex_id
from .answers_mistral import chat_completion, error_response
from .config import BatchFault, Limits, Provider
from .http import JSON, download, json_body, provider_error, route
from .store import BatchRecord, FileRecord, RequestSet, State, split_lines

PREFIX = "/mistral"
ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings", "/v1/fim/completions", "/v1/moderations", "/v1/chat/moderations")
_STATUS = {"completed": "SUCCESS", "failed": "FAILED", "expired": "TIMEOUT_EXCEEDED", "cancelled": "CANCELLED"}
_MAX_TIMEOUT_HOURS = 168


def _error(status: int, message: str, code: str | None = None) -> JSON:
    return provider_error("mistral", status, message, code=code)


def _unprocessable(field: str, message: str) -> JSON:
    """FastAPI's validation answer, which Mistral gives a malformed body (the SDK raises `HTTPValidationError`)."""
    detail = [{"type": "value_error", "loc": ["body", field], "msg": message, "input": None}]
    return JSON({"object": "error", "message": {"detail": detail}, "type": "invalid_request_error"}, status_code=422)


def file_json(record: FileRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "file",
        "bytes": record.byte_size(),
        "created_at": int(record.created_at),
        "filename": record.filename,
        "purpose": record.purpose,
        "sample_type": "batch_result" if record.purpose == "batch_result" else "batch_request",
        "source": "mistral" if record.purpose == "batch_result" else "upload",
        "num_lines": len(split_lines(record.content)) if record.content is not None else None,
        "mimetype": "application/jsonl",
        "signature": None,
    }


def _file(state: State, file_id: str) -> FileRecord | None:
    record = state.files.get(file_id)
    return record if record is not None and record.provider == "mistral" else None


def _uuid(state: State, kind: str) -> str:
    raw = hex_id(32, kind, state.new_id("mistral-" + kind))
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


async def create_file(request: Request, state: State) -> Response:
    try:
        parts = multipart.parse(request.headers.get("content-type", ""), await request.body())
    except ValueError as error:
        return _error(400, f"Invalid multipart body: {error}.")
    if "file" not in parts:
        return _unprocessable("file", "Field required")
    purpose = parts["purpose"].data.decode() if "purpose" in parts else "fine-tune"
    if purpose not in ("fine-tune", "batch", "ocr"):
        return _unprocessable("purpose", f"Input should be 'fine-tune', 'batch' or 'ocr', not {purpose!r}")
    upload = parts["file"]
    if len(upload.data) > state.config.limits.mistral_max_bytes:
        return _error(413, f"File too large: the limit is {state.config.limits.mistral_max_bytes} bytes.")
    record = FileRecord(
        id=_uuid(state, "file"),
        provider="mistral",
        purpose=purpose,
        filename=upload.filename or "upload.jsonl",
        created_at=state.now(),
        content=upload.data,
    )
    state.files[record.id] = record
    state.count_created("mistral", "files")
    return JSON(file_json(record))


async def get_file(request: Request, state: State) -> Response:
    record = _file(state, request.path_params["file_id"])
    if record is None:
        return _error(404, f"File {request.path_params['file_id']} not found.", code="1404")
    return JSON(await run_in_threadpool(file_json, record))


async def delete_file(request: Request, state: State) -> Response:
    record = _file(state, request.path_params["file_id"])
    if record is None:
        return _error(404, f"File {request.path_params['file_id']} not found.", code="1404")
    del state.files[record.id]
    return JSON({"id": record.id, "object": "file", "deleted": True})


async def file_content(request: Request, state: State) -> Response:
    record = _file(state, request.path_params["file_id"])
    if record is None:
        return _error(404, f"File {request.path_params['file_id']} not found.", code="1404")
    size = (lambda: len(record.content or b"")) if record.content is not None else record.byte_size
    return download(request, record.chunks, size, "application/octet-stream")


# Jobs ----------------------------------------------------------------------------------------------------------------


def _read_inputs(data: bytes, limits: Limits) -> tuple[RequestSet, list[dict[str, Any]]]:
    """The job's requests, and its errors (`{"message", "count"}`): a job with any fails without running."""
    spans = split_lines(data)
    if len(spans) > limits.mistral_max_requests:
        return RequestSet(b"", array("q"), array("q"), []), [
            {"message": f"The batch holds more than {limits.mistral_max_requests} requests.", "count": 1}
        ]
    problems: dict[str, int] = {}
    custom_ids: list[str] = []
    seen: set[str] = set()
    for start, end in spans:
        try:
            line = orjson.loads(data[start:end])
        except orjson.JSONDecodeError:
            line = None
        custom_id = line.get("custom_id") if isinstance(line, dict) else None
        if not isinstance(line, dict) or not isinstance(line.get("body"), dict):
            message = "Invalid line: each line must be a JSON object with a `body` object."
            problems[message] = problems.get(message, 0) + 1
        elif not isinstance(custom_id, str) or not custom_id or custom_id in seen:
            message = "Invalid custom_id: each line needs a unique, non-empty `custom_id`."
            problems[message] = problems.get(message, 0) + 1
        custom_ids.append(custom_id if isinstance(custom_id, str) else "")
        seen.add(custom_id if isinstance(custom_id, str) else "")
    if not spans:
        problems["The batch input file is empty."] = 1
    errors = [{"message": message, "count": count} for message, count in problems.items()]
    return RequestSet.from_lines(spans, data, custom_ids), errors


async def create_job(request: Request, state: State) -> Response:
    body = await json_body(request)
    if not isinstance(body, dict):
        return _unprocessable("body", "Input should be a valid JSON object")
    endpoint, model, files = body.get("endpoint"), body.get("model"), body.get("input_files")
    metadata, hours = body.get("metadata"), body.get("timeout_hours", 24)
    if endpoint not in ENDPOINTS:
        return _unprocessable("endpoint", f"Input should be one of {', '.join(ENDPOINTS)}")
    if not isinstance(model, str) or not model:
        return _error(400, "A model is required to create a batch job.", code="3000")
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        return _unprocessable("input_files", "Input should be a non-empty list of file ids")
    if metadata is not None and (
        not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values())
    ):
        return _unprocessable("metadata", "Input should be a dictionary of strings")
    if not isinstance(hours, int) or not 1 <= hours <= _MAX_TIMEOUT_HOURS:
        return _unprocessable("timeout_hours", f"Input should be between 1 and {_MAX_TIMEOUT_HOURS}")
    sources = [_file(state, f) for f in files]
    if any(s is None or s.content is None for s in sources):
        return _error(404, "An input file was not found.", code="1404")
    data = b"\n".join(s.content or b"" for s in sources if s is not None)
    requests, errors = await run_in_threadpool(_read_inputs, data, state.config.limits)
    fault = state.take_batch_fault("mistral")
    if errors:
        fault = BatchFault(outcome="fail")
    elif fault is not None and fault.outcome == "fail":
        errors = [{"message": fault.message, "count": 1}]
    chosen = state.request_faults("mistral", requests.custom_ids) if not errors else {}
    now = state.now()
    job = BatchRecord(
        id=_uuid(state, "job"),
        provider="mistral",
        created_at=now,
        requests=requests,
        model=model,
        errored=frozenset(chosen),
        fault=fault,
        request_fault_kinds=chosen,
        stage_started=now,
        info={
            "endpoint": endpoint,
            "input_files": files,
            "metadata": metadata,
            "errors": errors,
            "timeout": hours * 3600,
        },
    )
    state.add_batch(job)
    return JSON(job_json(job, state))


def _status(job: BatchRecord) -> str:
    if job.outcome is not None:
        return _STATUS[job.outcome]
    return "CANCELLATION_REQUESTED" if job.cancelling else lifecycle.stage_name(job)


def job_json(job: BatchRecord, state: State) -> dict[str, Any]:
    seed = state.config.shuffle_seed
    done = lifecycle.progress(job, state, state.now())
    failed = job.errored_among_first(seed, done)
    if job.ended and "output_file" not in job.info:
        _make_result_files(job, state)
    times = job.times
    return {
        "id": job.id,
        "object": "batch",
        "input_files": job.info["input_files"],
        "metadata": job.info["metadata"],
        "endpoint": job.info["endpoint"],
        "model": job.model,
        "agent_id": None,
        "output_file": job.info.get("output_file"),
        "error_file": job.info.get("error_file"),
        "errors": job.info["errors"] if job.outcome == "failed" else [],
        "outputs": None,
        "status": _status(job),
        "created_at": int(job.created_at),
        "total_requests": job.total,
        "completed_requests": done,
        "succeeded_requests": done - failed,
        "failed_requests": failed,
        "started_at": int(times["RUNNING"]) if "RUNNING" in times else None,
        "completed_at": int(times[job.outcome]) if job.outcome in times else None,
    }


def _make_result_files(job: BatchRecord, state: State) -> None:
    """Name the output and error files of an ended job; their lines are only written when downloaded."""
    failed = job.errored_among_first(state.config.shuffle_seed, job.done)
    ended_at = job.times.get(job.outcome or "", state.now())
    for kind, count in (("output", job.done - failed), ("error", failed)):
        file_id = None
        if count and job.outcome != "failed":
            file_id = _uuid(state, "file")
            state.files[file_id] = FileRecord(
                id=file_id,
                provider="mistral",
                purpose="batch_result",
                filename=f"{job.id}_{kind}.jsonl",
                created_at=ended_at,
                generate=_lines_maker(job, state, kind),
            )
        job.info[f"{kind}_file"] = file_id


def _lines_maker(job: BatchRecord, state: State, kind: str) -> Any:
    template, seed = state.config.response_template, state.config.shuffle_seed

    def generate() -> Iterator[bytes]:
        ctx = AnswerContext(job.id, int(job.times.get("RUNNING", job.created_at)), template)
        for index in job.order(seed)[: job.done]:
            fault = job.request_fault_kinds.get(index)
            if (fault is None) != (kind == "output"):
                continue
            custom_id = job.requests.custom_ids[index]
            if fault is not None:
                status, body = error_response(fault.kind, fault.message)
            else:
                status = 200
                request_body = orjson.loads(job.requests.line(index))["body"]
                body = chat_completion(request_body, str(job.model), custom_id, ctx)
            line_id = "batch-" + hex_id(32, job.id, custom_id)
            response = {"status_code": status, "body": body}
            yield orjson.dumps({"id": line_id, "custom_id": custom_id, "response": response, "error": None})
            yield b"\n"

    return generate


def _job(state: State, job_id: str) -> BatchRecord | None:
    job = state.batches.get(job_id)
    return job if job is not None and job.provider == "mistral" else None


async def get_job(request: Request, state: State) -> Response:
    job = _job(state, request.path_params["job_id"])
    if job is None:
        return _error(404, f"Batch job {request.path_params['job_id']} not found.", code="1404")
    lifecycle.advance(job, state)
    return JSON(job_json(job, state))


async def cancel_job(request: Request, state: State) -> Response:
    job = _job(state, request.path_params["job_id"])
    if job is None:
        return _error(404, f"Batch job {request.path_params['job_id']} not found.", code="1404")
    if not lifecycle.cancel(job, state):
        return _error(400, f"Cannot cancel a batch job with status {_status(job)}.", code="3000")
    return JSON(job_json(job, state))


async def list_jobs(request: Request, state: State) -> Response:
    query = request.query_params
    try:
        page, size = int(query.get("page", 0)), int(query.get("page_size", 100))
    except ValueError:
        return _unprocessable("page", "Input should be a valid integer")
    if page < 0 or not 1 <= size <= 1000:
        return _unprocessable("page_size", "Input should be between 1 and 1000")
    jobs = [j for j in state.batches.values() if j.provider == "mistral"]
    if query.get("order_by", "-created") == "-created":
        jobs.reverse()
    if status := query.getlist("status"):
        jobs = [j for j in jobs if _status(j) in status]
    chosen = jobs[page * size : (page + 1) * size]
    for job in chosen:
        lifecycle.advance(job, state)
    return JSON({"object": "list", "data": [job_json(j, state) for j in chosen], "total": len(jobs)})


def routes() -> list[Route]:
    p: Provider = "mistral"
    return [
        route(PREFIX + "/v1/files", create_file, ["POST"], p),
        route(PREFIX + "/v1/files/{file_id}/content", file_content, ["GET"], p),
        route(PREFIX + "/v1/files/{file_id}", get_file, ["GET"], p),
        route(PREFIX + "/v1/files/{file_id}", delete_file, ["DELETE"], p),
        route(PREFIX + "/v1/batch/jobs", create_job, ["POST"], p),
        route(PREFIX + "/v1/batch/jobs", list_jobs, ["GET"], p),
        route(PREFIX + "/v1/batch/jobs/{job_id}", get_job, ["GET"], p),
        route(PREFIX + "/v1/batch/jobs/{job_id}/cancel", cancel_job, ["POST"], p),
    ]

"""Mistral's batch API's JSON, read and written: paths, input lines, BatchJob objects and result lines. No I/O here.

Requests are `/v1/chat/completions` bodies without a `model` (a Mistral job names one model for all its lines), a line
`{"custom_id": ..., "body": ...}` each of a JSONL file uploaded with purpose `batch`. Results are the output and error
files' lines, `{"custom_id", "response": {"status_code", "body"}, "error"}`, stored as OpenAI's adapter stores its own:
a succeeded body is the chat completion, an errored one `{"status_code", "body"}`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from ..._json import dumps
from ...errors import BatchInputError, MalformedAnswer
from ...raw import RawRequest
from ...records import ReadResult, Tokens, token_count
from ..base import UNUSABLE, Encoded, Snapshot, State, count_of, created_snapshot_of

DEFAULT_BASE_URL = "https://api.mistral.ai"
ENDPOINT = "/v1/chat/completions"
FILES = "/v1/files"
JOBS = "/v1/batch/jobs"
MAX_REQUESTS = 1_000_000
"""Mistral's documented most requests in one batch job."""
MAX_BYTES = 512_000_000
"""The Files API's largest upload (512 MB)."""
TIMEOUT_HOURS = 24
"""The job's window: Mistral's default `timeout_hours`; a job still running then ends as TIMEOUT_EXCEEDED."""
FIND_PAGE = 100
"""Jobs per page when listing them to find one."""
FIND_PAGES = 50
"""The most pages listed to find a job (5,000 jobs, newest first): a lost job is a recent one."""

STATES: dict[str, State] = {
    "QUEUED": "running",
    "RUNNING": "running",
    "SUCCESS": "completed",
    "FAILED": "failed",
    "TIMEOUT_EXCEEDED": "expired",
    "CANCELLATION_REQUESTED": "cancelling",
    "CANCELLED": "cancelled",
}
_LINE_HEAD = b'{"custom_id":'
_LINE_MID = b',"body":'


# -- requests ---------------------------------------------------------------------------------------------------------
def raw_request(request: RawRequest) -> Encoded:
    """A `/v1/chat/completions` line of a Mistral batch file, kept as it is: its model makes its group."""
    if request.url not in (None, "", ENDPOINT):
        raise BatchInputError(
            f"request {request.custom_id!r}: url {request.url!r} is not an endpoint batchline batches on Mistral "
            f"({ENDPOINT})."
        )
    body = dict(request.body)
    model = body.pop("model", None)
    if not isinstance(model, str) or not model:
        raise BatchInputError(f"request {request.custom_id!r}: its body names no model.")
    return Encoded(request.custom_id, dumps(body), group=model)


def line_size(request: Encoded) -> int:
    """The bytes its line (and newline) adds to the input file."""
    return len(_LINE_HEAD) + len(orjson.dumps(request.custom_id)) + len(_LINE_MID) + len(request.body) + 2


def input_lines(requests: Iterable[tuple[str, bytes]]) -> Iterator[bytes]:
    """The batch input file, a line per request."""
    for custom_id, body in requests:
        yield b"".join((_LINE_HEAD, orjson.dumps(custom_id), _LINE_MID, body, b"}\n"))


def job_body(file_id: str, model: str, job_id: str, part: int) -> dict[str, Any]:
    """The create call's body; the metadata lets `find` recover a job whose id was lost."""
    return {
        "input_files": [file_id],
        "endpoint": ENDPOINT,
        "model": model,
        "metadata": {"batchline_job": job_id, "batchline_part": str(part)},
        "timeout_hours": TIMEOUT_HOURS,
    }


def is_ours(job: object, job_id: str, part: int) -> bool:
    """Whether a listed job is the one created for this job and part (by its metadata)."""
    metadata = job.get("metadata") if isinstance(job, dict) else None
    return (
        isinstance(metadata, dict)
        and metadata.get("batchline_job") == job_id
        and metadata.get("batchline_part") == str(part)
    )


# -- jobs -------------------------------------------------------------------------------------------------------------
def created_snapshot(content: bytes) -> Snapshot:
    return created_snapshot_of(content, "mistral", to_snapshot)


def to_snapshot(job: object) -> Snapshot:
    """A BatchJob object as a `Snapshot`; `MalformedAnswer` when it is not one (not an object, no id, no status)."""
    if not isinstance(job, dict) or not isinstance(job.get("id"), str) or not job["id"]:
        raise MalformedAnswer(f"mistral: a batch job answer is not a BatchJob object ({type(job).__name__})")
    status = job.get("status")
    if not isinstance(status, str):
        raise MalformedAnswer(f"mistral: batch job {job['id'][:80]!r} answered without a status")
    state = STATES.get(status, "running")  # a status added later is one the job has not ended in
    raw_errors = job.get("errors")
    errors = [e for e in raw_errors if isinstance(e, dict)] if isinstance(raw_errors, list) else []
    details: dict[str, Any] = {
        key: job[key] for key in ("output_file", "error_file") if isinstance(job.get(key), str) and job[key]
    }
    inputs = job.get("input_files")
    if isinstance(inputs, list) and all(isinstance(i, str) for i in inputs):
        details["input_files"] = inputs
    if errors:
        details["errors"] = errors
    error = None
    if state == "failed":
        error = "; ".join(str(e.get("message") or "error") for e in errors) or None
    return Snapshot(
        id=str(job["id"]),
        status=status,
        state=state,
        total=count_of(job.get("total_requests")),
        completed=count_of(job.get("succeeded_requests")),
        failed=count_of(job.get("failed_requests")),
        error=error,
        details=details,
    )


# -- results ----------------------------------------------------------------------------------------------------------
def result_of(line: object) -> tuple[str, str, bytes]:
    """An output or error file line as `(custom_id, status, body)`; a line with no string custom_id is `UNUSABLE`."""
    return read_result(line)[:3]


def read_result(line: object) -> ReadResult:
    """`result_of`, with a succeeded body's tokens (`usage_of`) read from the line already parsed."""
    if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str) or not line["custom_id"]:
        return UNUSABLE, "no custom_id", b"", None
    custom_id: str = line["custom_id"]
    response = line.get("response")
    if isinstance(response, dict):
        code = response.get("status_code")
        if isinstance(code, int) and 200 <= code < 300:
            body = response.get("body")
            return custom_id, "succeeded", dumps(body), _tokens(body)
        return custom_id, "errored", dumps({"status_code": code or 500, "body": response.get("body")}), None
    error = line.get("error")
    body = error if isinstance(error, dict) else {"message": str(error or "Mistral gave no result for this request.")}
    return custom_id, "errored", orjson.dumps({"status_code": 500, "body": body}), None


def unrun_error(batch: Snapshot) -> bytes:
    """The errored body of a request that a failed (or otherwise ended) job never ran."""
    message = batch.error or f"Mistral ended batch job {batch.id} ({batch.status}) without a result for this request."
    code = 400 if batch.state == "failed" else 500
    return orjson.dumps({"status_code": code, "body": {"object": "error", "message": message, "type": "batch_error"}})


def export_line(custom_id: str, status: str, body: bytes) -> bytes:
    """A line as Mistral's output or error file writes it."""
    response: object = None
    error: object = None
    if status == "succeeded":
        response = {"status_code": 200, "body": orjson.Fragment(body)}
    elif status == "errored":
        stored = orjson.loads(body)
        response = {"status_code": stored.get("status_code", 500), "body": stored.get("body")}
    else:
        error = {"message": f"The batch job {status} before this request ran.", "code": status}
    return orjson.dumps({"custom_id": custom_id, "response": response, "error": error})


def usage_of(body: bytes) -> tuple[int, int]:
    """`(input, output)` tokens of a stored succeeded chat completion; (0, 0) when it has none."""
    try:
        return _tokens(orjson.loads(body))
    except orjson.JSONDecodeError:
        return 0, 0


def _tokens(answer: object) -> Tokens:
    usage = answer.get("usage") if isinstance(answer, dict) else None
    if not isinstance(usage, dict):
        return 0, 0
    given, made = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return token_count(given), token_count(made)

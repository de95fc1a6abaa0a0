"""Together's files as its SDK (`together` on PyPI) handles them, beside the one-call `/files/upload`:

1. `POST /v1/files` with a form naming the file (`purpose`, `file_name`, `file_type`, `checksum`) and no content answers
   302 with `Location` (on Together, a presigned storage URL) and `X-Together-File-Id`;
2. the content is PUT to that URL, which carries no API key; here it is `<root>/together/storage/{file_id}`;
3. `POST /v1/files/{file_id}/preprocess` answers the file object.

Together's file object adds `FileType`, `Processed` and `LineCount` to OpenAI's fields (its SDK requires `FileType`).
Files live with OpenAI's (the store's `openai` corner); a file announced but never PUT is empty.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from . import multipart
from . import openai_routes as oa
from .http import JSON, provider_error
from .store import FileRecord, State

PURPOSES = ("fine-tune", "eval", "eval-sample", "eval-output", "eval-summary", "batch-generated", "batch-api")
FILE_TYPES = ("jsonl", "parquet", "csv")
STORAGE_PATH = "/together/storage/{file_id}"


def _error(status: int, message: str) -> JSON:
    return provider_error("openai", status, message)


def _file_type(filename: str) -> str:
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return suffix if suffix in FILE_TYPES else "jsonl"


def _line_count(record: FileRecord) -> int:
    count, last = 0, b"\n"
    for chunk in record.chunks():
        count += chunk.count(b"\n")
        last = chunk[-1:] or last
    return count + (0 if last == b"\n" else 1)


def file_json(record: FileRecord) -> dict[str, Any]:
    """A file as Together describes it."""
    return {
        **oa.file_json(record),
        "FileType": _file_type(record.filename),
        "Processed": True,
        "LineCount": _line_count(record),
    }


def _together_file(state: State, file_id: str) -> FileRecord | None:
    record = state.files.get(file_id)
    return record if record is not None and record.provider == "openai" else None


async def announce(request: Request, state: State) -> Response:
    """Step 1: a file is named; the answer says where to PUT its content."""
    try:
        parts = multipart.parse(request.headers.get("content-type", ""), await request.body())
    except ValueError as error:
        return _error(400, f"Invalid multipart body: {error}.")
    fields = {name: part.data.decode() for name, part in parts.items() if part.filename is None}
    if fields.get("purpose") not in PURPOSES:
        return _error(400, f"Invalid purpose {fields.get('purpose')!r}: must be one of {', '.join(PURPOSES)}.")
    if not fields.get("file_name"):
        return _error(400, "Missing required parameter: 'file_name'.")
    if fields.get("file_type", "jsonl") not in FILE_TYPES:
        return _error(400, f"Invalid file_type {fields['file_type']!r}: must be one of {', '.join(FILE_TYPES)}.")
    record = FileRecord(
        id="file-" + state.new_mixed_id("openai-file", 22),
        provider="openai",
        purpose=fields["purpose"],
        filename=fields["file_name"],
        created_at=state.now(),
        content=b"",
    )
    state.files[record.id] = record
    state.count_created("openai", "files")
    location = str(request.base_url).rstrip("/") + STORAGE_PATH.format(file_id=record.id)
    return Response(status_code=302, headers={"Location": location, "X-Together-File-Id": record.id})


async def store_content(request: Request, state: State) -> Response:
    """Step 2: the content PUT to the announced URL (presigned: no API key)."""
    record = _together_file(state, request.path_params["file_id"])
    if record is None:
        return Response("NoSuchKey", status_code=404, media_type="text/plain")
    record.content = await request.body()
    record.size = None
    return Response(status_code=200)


async def preprocess(request: Request, state: State) -> Response:
    """Step 3: the stored file, described."""
    record = _together_file(state, request.path_params["file_id"])
    if record is None:
        return _error(404, f"File {request.path_params['file_id']} not found.")
    return JSON(await run_in_threadpool(file_json, record))


async def get_file(request: Request, state: State) -> Response:
    record = _together_file(state, request.path_params["file_id"])
    if record is None:
        return _error(404, f"File {request.path_params['file_id']} not found.")
    return JSON(await run_in_threadpool(file_json, record))


async def list_files(request: Request, state: State) -> Response:
    records = [f for f in reversed(state.files.values()) if f.provider == "openai"]
    return JSON({"data": await run_in_threadpool(lambda: [file_json(record) for record in records])})

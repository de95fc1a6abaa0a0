"""Gemini's Files API, as batch mode uses it: the resumable upload, get, list, delete and download."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .answers_gemini import field
from .config import Provider
from .http import JSON, authorized, download, json_body, provider_error, route
from .store import FileRecord, State

DAY = 24 * 3600


def error(status: int, message: str) -> JSON:
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
        "expirationTime": timestamp(record.created_at + 2 * DAY),
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
            return error(401, "Request is missing required authentication credential. Expected an API key.")
        if request.headers.get("x-goog-upload-protocol") != "resumable" or (
            request.headers.get("x-goog-upload-command") != "start"
        ):
            return error(400, "Only the resumable upload protocol is supported: send X-Goog-Upload-Command: start.")
        size = int(request.headers.get("x-goog-upload-header-content-length") or 0)
        if size > state.config.limits.gemini_max_file_bytes:
            return error(400, f"File size {size} exceeds the {state.config.limits.gemini_max_file_bytes} byte limit.")
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
        return error(404, "Upload session not found.")
    command = request.headers.get("x-goog-upload-command", "")
    offset = int(request.headers.get("x-goog-upload-offset") or 0)
    if offset != len(session["data"]):
        return error(400, f"Invalid upload offset {offset}; {len(session['data'])} bytes received so far.")
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
        return error(404, f"File files/{request.path_params['name']} not found.")
    return JSON(await run_in_threadpool(file_json, record, request))


async def delete_file(request: Request, state: State) -> Response:
    record = _file(state, request.path_params["name"])
    if record is None:
        return error(404, f"File files/{request.path_params['name']} not found.")
    del state.files[record.id]
    return JSON({})


async def list_files(request: Request, state: State) -> Response:
    records = [f for f in reversed(state.files.values()) if f.provider == "gemini"]
    page, token = paginate(records, request)
    data: dict[str, Any] = {"files": [await run_in_threadpool(file_json, f, request) for f in page]}
    if token:
        data["nextPageToken"] = token
    return JSON(data)


async def download_file(request: Request, state: State) -> Response:
    record = _file(state, request.path_params["name"])
    if record is None:
        return error(404, f"File files/{request.path_params['name']} not found.")
    return download(request, record.chunks, record.byte_size, record.mime_type)


def paginate(items: list[Any], request: Request) -> tuple[list[Any], str | None]:
    size = int(request.query_params.get("pageSize") or 50)
    start = int(request.query_params.get("pageToken") or 0)
    page = items[start : start + size]
    return page, str(start + size) if start + size < len(items) else None


def routes() -> list[Route]:
    p: Provider = "gemini"
    return [
        route("/upload/v1beta/files", upload, ["POST"], p, auth=False),
        route("/v1beta/files", list_files, ["GET"], p),
        route("/v1beta/files/{name}:download", download_file, ["GET"], p),
        route("/download/v1beta/files/{name}:download", download_file, ["GET"], p),
        route("/v1beta/files/{name}", get_file, ["GET"], p),
        route("/v1beta/files/{name}", delete_file, ["DELETE"], p),
    ]

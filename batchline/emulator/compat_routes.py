"""The OpenAI-compatible batch APIs, each under its own path prefix on the same server, with its differences:

- Groq under `/openai/v1` (as at api.groq.com): OpenAI's files and batches, chat completions only, a completion
  window of 24 hours to 7 days. Point `GROQ_BASE_URL` at the server's root.
- Azure OpenAI under `/openai` (as at `<resource>.openai.azure.com`): every call needs `?api-version=` and an `api-key`
  header (a Bearer token is refused), lines and batches name `/chat/completions`, the model is a deployment's name,
  100,000 requests per file. Point `AZURE_OPENAI_ENDPOINT` at the server's root.
- Together under `/together/v1`: files uploaded to `/files/upload`, or in its SDK's three steps (together_files.py),
  with purpose `batch-api` and described with `FileType`; a line may be just `custom_id` and `body`; the window
  defaults to 24h; creating a batch answers `{"job": ...}`; a batch job has upper-case statuses, a `progress`, an
  `error` string, ISO times and no metadata or request counts; the batch list is a bare array; 100 MB per file.
  Together's SDK (2.x on) puts `/v1` in its paths: point its `TOGETHER_BASE_URL` at `<root>/together`; a client
  whose base URL carries the version, at `<root>/together/v1`.

Their batches and files live with OpenAI's (the store's `openai` corner): they run, fail and answer as OpenAI's do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import lifecycle
from . import openai_routes as oa
from . import together_files as tf
from .http import JSON, Handler, json_body, route
from .store import State

GROQ_WINDOWS = ("24h", "48h", "72h", "96h", "120h", "144h", "168h", "1d", "2d", "3d", "4d", "5d", "6d", "7d")
GROQ = oa.Rules(endpoints=("/v1/chat/completions",), windows=GROQ_WINDOWS)
AZURE = oa.Rules(
    endpoints=("/chat/completions",),
    max_requests=100_000,
    answers_as=(("/chat/completions", "/v1/chat/completions"),),
)
# Together's lines may be just `custom_id` and `body`, and its window defaults to 24h (its docs and SDK omit both).
TOGETHER = oa.Rules(
    endpoints=("/v1/chat/completions",),
    purposes=("batch-api",),
    max_bytes=100_000_000,
    default_window="24h",
    route_optional=True,
)


# -- Groq -------------------------------------------------------------------------------------------------------------
async def groq_create(request: Request, state: State) -> Response:
    return await oa.create_with(await json_body(request), state, GROQ)


# -- Azure ------------------------------------------------------------------------------------------------------------
def _azure_error(status: int, code: str, message: str) -> JSON:
    return JSON({"error": {"code": code, "message": message}}, status_code=status)


def azure(handler: Handler) -> Handler:
    """`handler` behind Azure's checks: an `api-version` query and an `api-key` header."""

    async def checked(request: Request, state: State) -> Response:
        if not request.query_params.get("api-version"):
            return _azure_error(
                404, "404", "Resource not found: the api-version query parameter (?api-version=) is required."
            )
        if not request.headers.get("api-key", "").strip():
            return _azure_error(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
                "key for an active subscription and use a correct regional API endpoint for your resource.",
            )
        return await handler(request, state)

    return checked


async def azure_create(request: Request, state: State) -> Response:
    return await oa.create_with(await json_body(request), state, AZURE)


# -- Together ---------------------------------------------------------------------------------------------------------
def _iso(stamp: object) -> str | None:
    return datetime.fromtimestamp(stamp, UTC).isoformat() if isinstance(stamp, int | float) else None


def together_job(batch: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI Batch object as Together's batch job."""
    status = str(batch["status"])
    counts = batch.get("request_counts") or {}
    total = counts.get("total") or 0
    done = (counts.get("completed") or 0) + (counts.get("failed") or 0)
    errors = (batch.get("errors") or {}).get("data") or []
    return {
        "id": batch["id"],
        "user_id": "emulator-user",
        "input_file_id": batch["input_file_id"],
        "file_size_bytes": 0,
        "status": "IN_PROGRESS" if status == "finalizing" else status.upper(),
        "job_deadline": _iso(batch.get("expires_at")),
        "created_at": _iso(batch.get("created_at")),
        "endpoint": batch["endpoint"],
        "progress": round(100.0 * done / total, 1) if total else 0.0,
        "model_id": batch.get("model"),
        "output_file_id": batch.get("output_file_id"),
        "error_file_id": batch.get("error_file_id"),
        "error": "; ".join(str(e.get("message")) for e in errors) or None,
        "completed_at": _iso(batch.get("completed_at")),
    }


def _translated(response: Response, shape: Any) -> Response:
    if response.status_code != 200:
        return response
    return JSON(shape(orjson.loads(bytes(response.body))), headers={"x-request-id": "req_together"})


async def together_upload(request: Request, state: State) -> Response:
    answer = await oa.create_file(request, state)
    if answer.status_code != 200:
        return answer
    return JSON(tf.file_json(state.files[orjson.loads(bytes(answer.body))["id"]]))


async def together_create(request: Request, state: State) -> Response:
    answer = await oa.create_with(await json_body(request), state, TOGETHER)
    return _translated(answer, lambda batch: {"job": together_job(batch), "warning": None})


async def together_get(request: Request, state: State) -> Response:
    return _translated(await oa.get_batch(request, state), together_job)


async def together_cancel(request: Request, state: State) -> Response:
    return _translated(await oa.cancel_batch(request, state), together_job)


async def together_list(request: Request, state: State) -> Response:
    batches = [b for b in reversed(state.batches.values()) if b.provider == "openai"]
    for batch in batches:
        lifecycle.advance(batch, state)
    return JSON([together_job(oa.batch_json(batch, state)) for batch in batches])


def routes() -> list[Route]:
    groq, az, tg = "/openai/v1", "/openai", "/together/v1"
    files = [
        ("/files/{file_id}/content", oa.file_content, "GET"),
        ("/files/{file_id}", oa.get_file, "GET"),
        ("/files/{file_id}", oa.delete_file, "DELETE"),
        ("/files", oa.list_files, "GET"),
    ]
    batches = [("/batches/{batch_id}", oa.get_batch, "GET"), ("/batches/{batch_id}/cancel", oa.cancel_batch, "POST")]
    found: list[Route] = []
    shared = [*files, *batches, ("/files", oa.create_file, "POST"), ("/batches", oa.list_batches, "GET")]
    for path, handler, method in shared:
        found.append(route(groq + path, handler, [method], "openai"))
        found.append(route(az + path, azure(handler), [method], "openai", auth=False))
    found += [
        route(groq + "/batches", groq_create, ["POST"], "openai"),
        route(az + "/batches", azure(azure_create), ["POST"], "openai", auth=False),
        route(tg + "/files/upload", together_upload, ["POST"], "openai"),
        route(tg + "/batches", together_create, ["POST"], "openai"),
        route(tg + "/batches", together_list, ["GET"], "openai"),
        route(tg + "/batches/{batch_id}", together_get, ["GET"], "openai"),
        route(tg + "/batches/{batch_id}/cancel", together_cancel, ["POST"], "openai"),
        route(tg + "/files", tf.announce, ["POST"], "openai"),
        route(tf.STORAGE_PATH, tf.store_content, ["PUT"], "openai", auth=False),
        route(tg + "/files/{file_id}/preprocess", tf.preprocess, ["POST"], "openai"),
        route(tg + "/files/{file_id}", tf.get_file, ["GET"], "openai"),
        route(tg + "/files", tf.list_files, ["GET"], "openai"),
        route(tg + "/files/{file_id}/content", oa.file_content, ["GET"], "openai"),
        route(tg + "/files/{file_id}", oa.delete_file, ["DELETE"], "openai"),
    ]
    return found

"""HTTP plumbing every provider's routes share: auth, error shapes, call counting, HTTP faults, downloads."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import orjson
from starlette.concurrency import iterate_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .config import HttpFault, Provider
from .store import State, digest_id

RAW_SEND = "batchline.emulator.raw_send"
_REQUEST_ID_HEADERS = {"openai": "x-request-id", "anthropic": "request-id"}
Handler = Callable[[Request, State], Awaitable[Response]]

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    429: "requests",
    500: "server_error",
    503: "server_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
_GEMINI_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_DEFAULT_MESSAGES = {
    429: "Rate limit reached. Please try again later.",
    500: "The server had an error while processing your request.",
    503: "The service is temporarily unavailable. Please try again later.",
}


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def request_id(state: State) -> str:
    return "req_" + state.new_id("request", length=24)


def provider_error(
    provider: Provider | None,
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    error_type: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSON:
    """An error answer in `provider`'s own shape."""
    body: dict[str, Any]
    headers = dict(headers or {})
    rid = digest_id("0123456789abcdef", 32, "error", message, status, id(headers))
    if provider == "anthropic":
        kind = error_type or _ANTHROPIC_TYPES.get(status, "api_error")
        body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011" + rid[:21]}
        headers.setdefault("request-id", "req_011" + rid[:21])
    elif provider == "gemini":
        body = {"error": {"code": status, "message": message, "status": _GEMINI_STATUSES.get(status, "UNKNOWN")}}
    elif provider == "mistral":  # flat, with Mistral's numeric codes as strings
        kind = error_type or ("internal_server_error" if status >= 500 else "invalid_request_error")
        body = {"object": "error", "message": message, "type": kind, "param": param, "code": code}
    else:
        kind = error_type or _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        headers.setdefault("x-request-id", "req_" + rid)
    return JSON(body, status_code=status, headers=headers)


def authorized(provider: Provider | None, request: Request) -> bool:
    headers = request.headers
    bearer = headers.get("authorization", "")
    has_bearer = bearer.lower().startswith("bearer ") and bool(bearer[7:].strip())
    if provider == "anthropic":
        return bool(headers.get("x-api-key", "").strip()) or has_bearer
    if provider == "gemini":
        return bool(headers.get("x-goog-api-key", "").strip() or request.query_params.get("key")) or has_bearer
    return has_bearer


def _auth_error(provider: Provider | None) -> JSON:
    if provider == "anthropic":
        return provider_error(provider, 401, "x-api-key header is required")
    if provider == "gemini":
        return provider_error(
            provider, 401, "Request is missing required authentication credential. Expected an API key."
        )
    if provider == "mistral":
        return provider_error(provider, 401, "Unauthorized")
    return provider_error(
        provider,
        401,
        "You didn't provide an API key. You need to provide your API key in an Authorization header "
        "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
    )


class RawSendMiddleware:
    """Keeps the server's own `send` in the scope, so a fault can reach the connection under it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[RAW_SEND] = send
        await self.app(scope, receive, send)


async def close_connection(scope: Scope) -> None:
    """Close the client's connection at once, flushing only what was already written."""
    send = scope.get(RAW_SEND)
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.close()
    # Let the server see the connection is gone, so it does not try to answer on it.
    for _ in range(3):
        await asyncio.sleep(0)


class Dropped(Response):
    """No answer: the connection is closed before anything is sent."""

    def __init__(self) -> None:
        super().__init__(b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await close_connection(scope)


class Truncated(Response):
    """Promises `length` bytes with Content-Length, sends the first `cut` of them, then drops the connection."""

    def __init__(self, chunks: Iterator[bytes], length: int, cut: int, media_type: str) -> None:
        super().__init__(b"", media_type=media_type)
        self.chunks, self.length, self.cut = chunks, length, cut

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        media_type = (self.media_type or "application/octet-stream").encode()
        headers = [(b"content-type", media_type), (b"content-length", str(self.length).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        sent = 0
        async for chunk in iterate_in_threadpool(self.chunks):
            part = chunk[: self.cut - sent]
            if part:
                await send({"type": "http.response.body", "body": part, "more_body": True})
                sent += len(part)
            if sent >= self.cut:
                break
        await close_connection(scope)


def _chunked(lines: Iterator[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    buffer: list[bytes] = []
    held = 0
    for line in lines:
        buffer.append(line)
        held += len(line)
        if held >= size:
            yield b"".join(buffer)
            buffer, held = [], 0
    if buffer:
        yield b"".join(buffer)


def download(
    request: Request,
    make_chunks: Callable[[], Iterator[bytes]],
    size: Callable[[], int] | None,
    media_type: str = "application/octet-stream",
    headers: dict[str, str] | None = None,
) -> Response:
    """Stream a file; under a `truncate` fault, promise its whole size and stop short; under `lie_length`, promise
    a size it does not have; under `inject_lines`, add the fault's lines after the file's own."""
    hostile: HttpFault | None = getattr(request.state, "hostile_download", None)
    if hostile is not None and hostile.kind == "inject_lines":
        extra = b"\n" + b"".join(line.encode() + b"\n" for line in hostile.lines)
        return StreamingResponse(_chunked(itertools.chain(make_chunks(), [extra])), media_type=media_type)
    if hostile is not None and hostile.kind == "lie_length":
        return Truncated(_chunked(make_chunks()), hostile.length, hostile.length, media_type)
    fraction = getattr(request.state, "truncate", None)
    if fraction is not None and size is not None:
        length = size()
        cut = min(length - 1, max(0, math.floor(length * float(fraction))))
        return Truncated(_chunked(make_chunks()), length, cut, media_type)
    return StreamingResponse(_chunked(make_chunks()), media_type=media_type, headers=headers)


def _fault_answer(provider: Provider | None, fault: HttpFault) -> JSON:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["retry-after"] = str(math.ceil(fault.retry_after))
        headers["retry-after-ms"] = str(round(fault.retry_after * 1000))
    message = _DEFAULT_MESSAGES.get(fault.status, f"Injected error {fault.status}.")
    code = "rate_limit_exceeded" if fault.status == 429 and provider == "openai" else None
    return provider_error(provider, fault.status, message, code=code, headers=headers)


def _hostile_answer(response: Response, fault: HttpFault) -> Response:
    """The handler's answer, replaced by or merged with the fault's body, with the fault's headers."""
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
    headers.update(fault.headers)
    if fault.kind == "replace":
        return Response(orjson.dumps(fault.body), 200, headers=headers, media_type="application/json")
    body: bytes = bytes(response.body) if not isinstance(response, StreamingResponse) else b""
    if fault.body is not None and body:
        body = orjson.dumps(_merged(orjson.loads(body), fault.body))
    return Response(body, response.status_code, headers=headers, media_type=response.media_type or "application/json")


def _merged(answer: Any, patch: Any) -> Any:
    if not isinstance(answer, dict) or not isinstance(patch, dict):
        return patch
    return {**answer, **{key: _merged(answer.get(key), value) for key, value in patch.items()}}


def route(
    path: str,
    handler: Handler,
    methods: list[str],
    provider: Provider | None,
    *,
    auth: bool = True,
    name: str | None = None,
) -> Route:
    """A route that counts its calls, checks the API key and applies HTTP faults before `handler` runs."""
    key = f"{methods[0]} {name or path}"

    async def endpoint(request: Request) -> Response:
        state: State = request.app.state.emulator
        if provider is None:  # the admin endpoints: neither counted nor faulted
            return await handler(request, state)
        state.count_call(key)
        fault = state.take_http_fault(provider, request.method, request.url.path)
        if fault is not None:
            if fault.kind == "status":
                return _fault_answer(provider, fault)
            if fault.kind == "drop":
                return Dropped()
            if fault.kind == "slow":
                await asyncio.sleep(fault.delay)
            if fault.kind == "truncate":
                request.state.truncate = fault.fraction
            if fault.kind in ("lie_length", "inject_lines"):
                request.state.hostile_download = fault
        if auth and not authorized(provider, request):
            return _auth_error(provider)
        response = await handler(request, state)
        if fault is not None and fault.kind in ("replace", "patch"):
            response = _hostile_answer(response, fault)
        if provider in _REQUEST_ID_HEADERS and _REQUEST_ID_HEADERS[provider] not in response.headers:
            response.headers[_REQUEST_ID_HEADERS[provider]] = request_id(state)
        return response

    return Route(path, endpoint, methods=methods)


async def json_body(request: Request) -> Any:
    """The request's JSON body, or None when it is not JSON."""
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None

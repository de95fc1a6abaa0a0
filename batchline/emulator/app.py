"""The ASGI application: every provider's routes on one port, plus the admin endpoints under `/_emulator/`."""

from __future__ import annotations

import dataclasses

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import anthropic_routes, compat_routes, gemini_routes, mistral_routes, openai_routes
from .config import EmulatorConfig, Faults, Limits
from .http import JSON, RawSendMiddleware, json_body, provider_error, route
from .store import State


async def stats(request: Request, state: State) -> Response:
    return JSON(state.stats())


async def received(request: Request, state: State) -> Response:
    return JSON(state.received)


async def reset(request: Request, state: State) -> Response:
    state.reset()
    return JSON({"ok": True})


async def get_faults(request: Request, state: State) -> Response:
    return JSON(state.config.faults.to_dict())


async def put_faults(request: Request, state: State) -> Response:
    body = await json_body(request)
    try:
        faults = Faults.from_dict(body if isinstance(body, dict) else {})
    except TypeError as error:
        return provider_error(None, 400, f"Invalid faults: {error}")
    state.set_faults(faults)
    return JSON(faults.to_dict())


async def get_config(request: Request, state: State) -> Response:
    return JSON(state.config.to_dict())


async def patch_config(request: Request, state: State) -> Response:
    """Change timing, template, seed, window or limits of the running emulator (faults have their own endpoint)."""
    body = await json_body(request)
    if not isinstance(body, dict):
        return provider_error(None, 400, "Expected a JSON object.")
    config = state.config
    try:
        for name in ("stage_seconds", "response_template", "shuffle_seed", "completion_window_seconds"):
            if name in body:
                setattr(config, name, type(getattr(config, name))(body[name]))
        if "limits" in body:
            config.limits = Limits(**{**dataclasses.asdict(config.limits), **body["limits"]})
    except (TypeError, ValueError) as error:
        return provider_error(None, 400, f"Invalid config: {error}")
    return JSON(config.to_dict())


async def clock(request: Request, state: State) -> Response:
    """Move the emulator's clock forward by `advance` seconds: stages and expiry see the new time."""
    body = await json_body(request)
    advance = body.get("advance", 0) if isinstance(body, dict) else 0
    state.clock_offset += float(advance)
    return JSON({"now": state.now(), "offset": state.clock_offset})


async def health(request: Request, state: State) -> Response:
    return JSON({"ok": True})


def admin_routes() -> list[Route]:
    return [
        route("/_emulator/health", health, ["GET"], None, auth=False),
        route("/_emulator/stats", stats, ["GET"], None, auth=False),
        route("/_emulator/received", received, ["GET"], None, auth=False),
        route("/_emulator/reset", reset, ["POST"], None, auth=False),
        route("/_emulator/faults", get_faults, ["GET"], None, auth=False),
        route("/_emulator/faults", put_faults, ["PUT"], None, auth=False),
        route("/_emulator/config", get_config, ["GET"], None, auth=False),
        route("/_emulator/config", patch_config, ["PATCH"], None, auth=False),
        route("/_emulator/clock", clock, ["POST"], None, auth=False),
    ]


def build_app(config: EmulatorConfig | None = None) -> RawSendMiddleware:
    """The emulator as an ASGI app; its state is at `.app.state.emulator` of the returned wrapper."""
    routes = [*openai_routes.routes(), *compat_routes.routes(), *anthropic_routes.routes(), *gemini_routes.routes()]
    routes += mistral_routes.routes()
    routes += admin_routes()
    app = Starlette(routes=routes)
    app.state.emulator = State(config or EmulatorConfig())
    return RawSendMiddleware(app)

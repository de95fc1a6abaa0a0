"""Running the emulator: in a background thread (`running`), blocking (`serve`), or from the command line."""

from __future__ import annotations

import argparse
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import uvicorn

from .app import build_app
from .config import BatchFault, EmulatorConfig, Faults, HttpFault, Limits, Provider, RequestErrorKind, RequestFault


class Emulator:
    """A handle on a running emulator. Everything goes through its admin endpoints, so the handle works the same
    for a server in this process and for one started elsewhere (`Emulator("http://host:port")`)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def gemini_base_url(self) -> str:
        return self.url

    @property
    def groq_base_url(self) -> str:
        """`GROQ_BASE_URL`: the root, as the groq SDK's base is `https://api.groq.com` (its paths add `/openai/v1`)."""
        return self.url

    @property
    def together_base_url(self) -> str:
        return self.url + "/together/v1"

    @property
    def azure_endpoint(self) -> str:
        """`AZURE_OPENAI_ENDPOINT`: the root, under which Azure's paths begin with `/openai`."""
        return self.url

    @property
    def mistral_base_url(self) -> str:
        """Mistral's routes live under `/mistral`: its `/v1/files` would clash with OpenAI's on one port."""
        return self.url + "/mistral"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = orjson.dumps(body) if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("content-type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as answer:
            return orjson.loads(answer.read())

    def stats(self) -> dict[str, Any]:
        """Batches and files each provider created, requests its batches brought, and calls per endpoint
        (`calls["POST /v1/batches"]`)."""
        result: dict[str, Any] = self._call("GET", "/_emulator/stats")
        return result

    def received(self) -> dict[str, list[str]]:
        """Each provider's custom_ids in the order its batches brought them (a request sent twice is there twice)."""
        result: dict[str, list[str]] = self._call("GET", "/_emulator/received")
        return result

    def reset(self) -> None:
        """Forget all files, batches, faults, statistics and clock changes."""
        self._call("POST", "/_emulator/reset")

    def faults(self) -> Faults:
        return Faults.from_dict(self._call("GET", "/_emulator/faults"))

    def set_faults(self, faults: Faults) -> None:
        """Replace every fault (HTTP fault use counts start again)."""
        self._call("PUT", "/_emulator/faults", faults.to_dict())

    def clear_faults(self) -> None:
        self.set_faults(Faults())

    def add_fault(self, fault: HttpFault | BatchFault | RequestFault) -> None:
        """Add one fault to those set."""
        faults = self.faults()
        if isinstance(fault, HttpFault):
            faults.http.append(fault)
        elif isinstance(fault, BatchFault):
            faults.batches.append(fault)
        else:
            faults.requests.append(fault)
        self.set_faults(faults)

    def fail_requests(
        self,
        custom_ids: list[str] | None = None,
        *,
        pattern: str | None = None,
        provider: Provider | None = None,
        kind: RequestErrorKind = "server_error",
        message: str | None = None,
    ) -> None:
        """Make the requests with these custom_ids (or matching `pattern`) fail inside batches created from now on."""
        fault = RequestFault(list(custom_ids or []), pattern=pattern, provider=provider, kind=kind, message=message)
        self.add_fault(fault)

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change `stage_seconds`, `response_template`, `shuffle_seed`, `completion_window_seconds` or `limits`."""
        if isinstance(changes.get("limits"), Limits):
            changes["limits"] = changes["limits"].to_dict()
        result: dict[str, Any] = self._call("PATCH", "/_emulator/config", changes)
        return result

    def config(self) -> EmulatorConfig:
        return EmulatorConfig.from_dict(self._call("GET", "/_emulator/config"))

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock forward: lifecycle stages and expiry happen as if `seconds` had passed."""
        self._call("POST", "/_emulator/clock", {"advance": seconds})


def _uvicorn_config(app: Any, **options: Any) -> uvicorn.Config:
    # No access log: it would print query strings, and Gemini's `key` query parameter is an API key.
    return uvicorn.Config(app, access_log=False, lifespan="off", timeout_graceful_shutdown=1, **options)


@contextmanager
def running(config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> Iterator[Emulator]:
    """Start the emulator in a background thread (port 0: a free one) and stop it on exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(_uvicorn_config(build_app(config), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="batchline-emulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the emulator did not start")
        time.sleep(0.005)
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    try:
        yield Emulator(f"http://{shown}:{bound_port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def serve(host: str, port: int, config: EmulatorConfig | None = None) -> None:
    """Serve the emulator until interrupted."""
    uvicorn.Server(_uvicorn_config(build_app(config), host=host, port=port, log_level="info")).run()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    parser.add_argument(
        "--stage-seconds",
        type=float,
        default=0.0,
        help="seconds each batch lifecycle stage lasts; 0 (default) ends a batch on its first read",
    )
    parser.add_argument(
        "--response-template",
        default="Mock response for {custom_id}",
        help="answer text; {custom_id}, {model} and {provider} are filled in",
    )
    parser.add_argument("--shuffle-seed", type=int, default=0, help="seed of the result-line order")
    parser.add_argument(
        "--completion-window-seconds",
        type=float,
        default=24 * 3600.0,
        help="unfinished batches expire after this long (default 24 h)",
    )


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    return EmulatorConfig(
        stage_seconds=args.stage_seconds,
        response_template=args.response_template,
        shuffle_seed=args.shuffle_seed,
        completion_window_seconds=args.completion_window_seconds,
    )


def run_from_args(args: argparse.Namespace) -> None:
    serve(args.host, args.port, config_from_args(args))

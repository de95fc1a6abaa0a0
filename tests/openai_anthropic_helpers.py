"""What the OpenAI and Anthropic adapter tests share: worker environment pointing at the emulator, an adapter
context on its own in-memory Redis, and a look at what a job stored."""

from __future__ import annotations

import os
from typing import Any

import fakeredis
import httpx2
import orjson
from pydantic import BaseModel
from pydantic_ai import ModelRequest, ToolDefinition
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.output import OutputObjectDefinition

from batchline import runtime, worker
from batchline.config import Settings
from batchline.emulator import Emulator
from batchline.providers import ProviderContext
from batchline.providers.http import ProviderHTTP
from batchline.store import Store

FAKE_OPENAI_KEY = "sk-test-not-a-real-key-0123456789"
FAKE_ANTHROPIC_KEY = "sk-ant-test-not-a-real-key-0123456789"


def provider_env(emulator: Emulator) -> dict[str, str]:
    """The worker's provider variables, as a user sets them, pointing at the emulator."""
    return {
        "OPENAI_BASE_URL": emulator.openai_base_url,
        "OPENAI_API_KEY": FAKE_OPENAI_KEY,
        "ANTHROPIC_BASE_URL": emulator.anthropic_base_url,
        "ANTHROPIC_API_KEY": FAKE_ANTHROPIC_KEY,
    }


def fresh_runtime() -> None:
    """Forget the embedded runtime's adapters, so the next job's adapters read this test's environment."""
    runtime._runtimes.pop(id(worker.app), None)


def context(**settings: object) -> ProviderContext:
    """A worker context whose scratch is the Anthropic adapter's (the OpenAI adapter keeps none)."""
    config = Settings(**settings)  # type: ignore[arg-type]
    return ProviderContext(config, Store(fakeredis.FakeRedis(), "t:", config.ttl_seconds).scratch("anthropic"))


def ask(text: str) -> list[ModelRequest]:
    return [ModelRequest.user_text_prompt(text)]


def uploaded_bodies(emulator: Emulator) -> dict[str, Any]:
    """The body of every request in the OpenAI input files the emulator still holds, by custom_id."""
    headers = {"Authorization": f"Bearer {FAKE_OPENAI_KEY}"}
    with httpx2.Client(base_url=emulator.openai_base_url, headers=headers) as client:
        files = client.get("/files", params={"purpose": "batch"}).json()["data"]
        lines = [
            orjson.loads(line)
            for file in files
            for line in client.get(f"/files/{file['id']}/content").content.splitlines()
        ]
    return {line["custom_id"]: line["body"] for line in lines}


class Recording(httpx2.BaseTransport):
    """A transport that keeps every request it sends on to the real one (the emulator)."""

    def __init__(self) -> None:
        self.inner = httpx2.HTTPTransport()
        self.requests: list[httpx2.Request] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        self.requests.append(request)
        return self.inner.handle_request(request)

    def sent(self, method: str, path_end: str) -> list[httpx2.Request]:
        return [r for r in self.requests if r.method == method and r.url.path.endswith(path_end)]


def record_worker_http(model: str) -> Recording:
    """Make the embedded worker's adapter for `model` send through a `Recording` (its environment stays as set)."""
    adapter: Any = runtime.runtime_for(worker.app).provider(model)
    recording = Recording()
    adapter._http = ProviderHTTP(adapter.name, *adapter.client_config(os.environ), transport=recording)
    return recording


class Calculate(BaseModel):
    """Perform a calculation."""

    expression: str


CALCULATE = ToolDefinition(
    name="calculate", description=Calculate.__doc__, parameters_json_schema=Calculate.model_json_schema()
)


class City(BaseModel):
    name: str
    population: int


def output_modes() -> dict[str, ModelRequestParameters]:
    schema = City.model_json_schema()
    return {
        "native": ModelRequestParameters(
            output_mode="native", output_object=OutputObjectDefinition(json_schema=schema, name="City")
        ),
        "tool": ModelRequestParameters(
            output_mode="tool",
            output_tools=[ToolDefinition(name="final_result", parameters_json_schema=schema, kind="output")],
            allow_text_output=False,
        ),
        "prompted": ModelRequestParameters(
            output_mode="prompted", output_object=OutputObjectDefinition(json_schema=schema, name="City")
        ),
    }

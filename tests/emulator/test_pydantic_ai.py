"""pydantic-ai's batch support runs unchanged against the emulator and decodes every answer."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from pydantic_ai import Agent, RunContext
from pydantic_ai.capabilities import BatchModelRequests
from pydantic_ai.messages import ModelRequest, TextPart, ToolCallPart, UserPromptPart
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.batch import BatchRequest
from pydantic_ai.models.google import GoogleModel
from pydantic_ai.models.openai import OpenAIResponsesModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.google import GoogleProvider
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.tools import ToolDefinition

from batchline.emulator import Emulator

TOOL = ToolDefinition(
    name="get_weather",
    parameters_json_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city", "days"],
    },
)


def _model(provider: str, emulator: Emulator) -> Model:
    if provider == "openai":
        return OpenAIResponsesModel("gpt-4o", provider=OpenAIProvider(base_url=emulator.openai_base_url, api_key="k"))
    if provider == "anthropic":
        return AnthropicModel("claude-sonnet-4-5", provider=AnthropicProvider(api_key="k", base_url=emulator.url))
    return GoogleModel("gemini-2.5-flash", provider=GoogleProvider(api_key="k", base_url=emulator.url))


async def _round_trip(model: Model) -> dict[str, list[object]]:
    requests = [
        BatchRequest(custom_id="plain", messages=[ModelRequest(parts=[UserPromptPart("hello")])]),
        BatchRequest(
            custom_id="tool",
            messages=[ModelRequest(parts=[UserPromptPart("what is the weather?")])],
            model_request_parameters=ModelRequestParameters(function_tools=[TOOL], allow_text_output=False),
        ),
    ]
    encoded = [await model.batch_encode(request) for request in requests]
    batch = await model.batch_create(encoded)
    batch = await model.batch_status(batch)
    assert batch.status == "ended"
    by_id = {request.custom_id: request for request in requests}
    return {
        result.custom_id: model.batch_decode(result, by_id[result.custom_id]).parts
        for result in await model.batch_results(batch)
    }


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_batch_round_trip(provider: str, emulator: Emulator) -> None:
    parts = asyncio.run(_round_trip(_model(provider, emulator)))
    assert set(parts) == {"plain", "tool"}
    (text,) = parts["plain"]
    assert isinstance(text, TextPart) and text.content == "Mock response for plain"
    (call,) = parts["tool"]
    assert isinstance(call, ToolCallPart) and call.tool_name == "get_weather"
    assert call.args_as_dict() == {"city": "example city", "days": 1}
    assert emulator.stats()[provider]["batches_created"] == 1


def _two_tool_agent() -> Agent[str, str]:
    agent = Agent(deps_type=str)

    @agent.tool
    def lookup(ctx: RunContext[str], city: str) -> str:
        return f"lookup({ctx.deps})"

    @agent.tool_plain
    def forecast(days: int) -> str:
        return f"forecast({days})"

    return agent


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_an_agent_takes_two_tool_rounds_through_batches(provider: str, emulator: Emulator) -> None:
    """A prompt naming two tools: the model calls one per round, then answers with both results; every model request
    of the runs goes through the provider's batch API (pydantic-ai's own `BatchModelRequests`)."""
    emulator.configure(response_template="answer for {custom_id}: {tool_results}")
    agent = _two_tool_agent()
    batching = BatchModelRequests(max_requests=3, poll_interval=timedelta(milliseconds=10))

    async def run_all() -> list[str]:
        async with batching:
            runs = [
                agent.run(
                    "use lookup, then forecast", model=_model(provider, emulator), deps=name, capabilities=[batching]
                )
                for name in ("a", "b", "c")
            ]
            return [result.output for result in await asyncio.gather(*runs)]

    outputs = asyncio.run(run_all())
    for name, output in zip(("a", "b", "c"), outputs, strict=True):
        assert output.endswith(f": lookup({name}); forecast(1)")
    assert emulator.stats()[provider]["batches_created"] == 3  # one batch per round, not per run

"""Agents the agent tests run on the fleet: importable by the test workers, as a project's `myapp.agents` is."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel
from pydantic_ai import Agent, ModelRetry, RunContext

from batchline.agents import idempotency_key

PROMPT = "Use lookup, then forecast."
"""Names both tools: the emulator's model calls one per round, then answers with both results (three requests)."""


def make_deps(custom_id: str) -> str:
    """A run's deps, built on the worker from its custom_id."""
    return custom_id.upper()


def _agent(model: str) -> Agent[str, str]:
    agent = Agent(model, deps_type=str, defer_model_check=True)

    @agent.tool
    def lookup(ctx: RunContext[str], city: str) -> str:
        _record(ctx)
        return f"lookup({ctx.deps})"

    @agent.tool_plain
    async def forecast(days: int) -> str:
        return f"forecast({days})"

    return agent


def _record(ctx: RunContext[str]) -> None:
    """Each tool execution, as a line in the file `AGENT_TOOL_LOG` names (the SIGKILL suite counts them); a slow
    tool when `AGENT_TOOL_SECONDS` says so, to be killed during."""
    path = os.environ.get("AGENT_TOOL_LOG")
    if path:
        with Path(path).open("a") as log:
            log.write(f"{idempotency_key(ctx)}\n")
    seconds = float(os.environ.get("AGENT_TOOL_SECONDS", "0"))
    if seconds:
        import time

        time.sleep(seconds)


openai_agent = _agent("openai:gpt-4o-mini")
anthropic_agent = _agent("anthropic:claude-haiku-4-5")
google_agent = _agent("google:gemini-2.5-flash")


class Forecast(BaseModel):
    city: str
    days: int


structured_agent = Agent("openai:gpt-4o-mini", output_type=Forecast, deps_type=str, defer_model_check=True)


@structured_agent.tool_plain
def lookup(city: str) -> str:
    return f"lookup({city})"


failing_agent = Agent("openai:gpt-4o-mini", defer_model_check=True)


@failing_agent.tool_plain
def lookup_broken(city: str) -> str:
    """A tool that fails: pydantic-ai ends the run with its exception."""
    raise RuntimeError("the lookup service is down")


@failing_agent.tool_plain
def lookup_flaky(city: str) -> str:
    """A tool that asks the model to try again once, as `ModelRetry` does."""
    raise ModelRetry("try another city")

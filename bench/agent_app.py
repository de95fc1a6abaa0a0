"""The benchmark's agent: two tools, so a prompt naming both takes three model requests (two tool rounds)."""

from __future__ import annotations

from pydantic_ai import Agent, RunContext

PROMPT = "Use lookup, then forecast."


def make_deps(custom_id: str) -> str:
    return custom_id.upper()


def build(model: object = "openai:gpt-4o-mini") -> Agent[str, str]:
    agent: Agent[str, str] = Agent(model, deps_type=str, defer_model_check=True)  # type: ignore[call-overload]

    @agent.tool
    def lookup(ctx: RunContext[str], city: str) -> str:
        return f"lookup({ctx.deps})"

    @agent.tool_plain
    def forecast(days: int) -> str:
        return f"forecast({days})"

    return agent


agent = build()

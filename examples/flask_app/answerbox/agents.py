"""A support agent the workers run over many questions (`batchline.agents.run_batch`): each question's model
requests go through the provider's batch API, its tool runs on a worker between the rounds."""

import os

from batchline.agents import idempotency_key
from pydantic_ai import Agent, RunContext

# defer_model_check: the model's key lives in the workers' environment; the web process never needs it.
support = Agent(
    os.environ.get("BATCHLINE_EXAMPLE_AGENT_MODEL", "openai:gpt-4o-mini"),
    deps_type=str,
    instructions="Answer the customer's question about their order; look it up with order_status first.",
    defer_model_check=True,
)


@support.tool
def order_status(ctx: RunContext[str], order_id: str) -> str:
    """The status of an order. A tool may run again after a worker dies: keyed side effects stay single."""
    _ = idempotency_key(ctx)  # what a tool that writes somewhere would key its write by
    return f"order {order_id} of {ctx.deps}: shipped"


def customer_of(custom_id: str) -> str:
    """A run's deps, built on the worker from its custom_id (deps rarely serialise)."""
    return f"customer {custom_id}"

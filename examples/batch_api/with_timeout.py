"""Give up on a batch that takes too long: `timeout` cancels it at the provider and raises TimeoutError."""

import asyncio
import os
import sys

from pydantic_ai import ModelRequest

from batchline import model_request_batch

MODEL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BATCHLINE_EXAMPLE_MODEL", "test")


async def main() -> None:
    requests = [
        ("q1", [ModelRequest.user_text_prompt("What is AI?")]),
        ("q2", [ModelRequest.user_text_prompt("What is ML?")]),
    ]

    # Not done within 30 minutes: the job's provider batches are cancelled and TimeoutError is raised.
    results = await model_request_batch(MODEL, requests, timeout=1800.0)

    for result in results:
        if result.is_successful:
            print(f"{result.custom_id}: {result.response.parts[0].content}")


if __name__ == "__main__":
    asyncio.run(main())

"""Submit four questions as one batch and wait for the answers: submit, poll and collect in one call."""

import asyncio
import os
import sys

from pydantic_ai import ModelRequest

from batchline import model_request_batch

# "test" answers at once with no key; pass a model string (or set BATCHLINE_EXAMPLE_MODEL) for a real provider.
MODEL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BATCHLINE_EXAMPLE_MODEL", "test")

QUESTIONS = {
    "math-1": "What is 2 + 2?",
    "math-2": "What is the square root of 144?",
    "science-1": "What is photosynthesis?",
    "science-2": "Explain gravity in one sentence.",
}


async def main() -> None:
    # A request is a (custom_id, messages) pair; the custom_id comes back on its result.
    requests = [(custom_id, [ModelRequest.user_text_prompt(text)]) for custom_id, text in QUESTIONS.items()]

    # Half the price of real-time calls; the status is checked every poll_interval seconds until the batch is done.
    results = await model_request_batch(MODEL, requests, poll_interval=60.0)

    for result in results:  # one per request, in request order
        if result.is_successful:
            print(f"{result.custom_id}: {result.response.parts[0].content}")
        else:
            print(f"{result.custom_id}: ERROR - {result.error.message}")


if __name__ == "__main__":
    asyncio.run(main())

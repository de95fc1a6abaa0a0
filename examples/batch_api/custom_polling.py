"""The batch lifecycle step by step: create, poll with a growing wait, then fetch the results."""

import asyncio
import os
import sys

from pydantic_ai import ModelRequest

from batchline import batch_create, batch_results, batch_status

MODEL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BATCHLINE_EXAMPLE_MODEL", "test")


async def main() -> None:
    requests = [
        ("q1", [ModelRequest.user_text_prompt("What is 2 + 2?")]),
        ("q2", [ModelRequest.user_text_prompt("What is 3 + 3?")]),
    ]

    batch = await batch_create(MODEL, requests)
    print(f"Batch {batch.id} submitted with {batch.request_count} requests")

    # Each wait is half as long again as the one before, up to 5 minutes. (Start at 10 s or more with a real
    # provider; a batch there takes minutes to hours.) Progress goes to stderr: stdout holds only the results.
    wait = 1.0
    while not batch.is_complete:
        print(f"Status: {batch.status.name} - waiting {wait:g}s...", file=sys.stderr)
        await asyncio.sleep(wait)
        batch = await batch_status(MODEL, batch)
        wait = min(wait * 1.5, 300)

    if not batch.is_successful:
        print(f"Batch failed with status: {batch.status.name}")
        return
    for result in await batch_results(MODEL, batch):
        if result.is_successful:
            print(f"{result.custom_id}: {result.response.parts[0].content}")


if __name__ == "__main__":
    asyncio.run(main())

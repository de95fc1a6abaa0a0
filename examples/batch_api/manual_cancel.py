"""Cancel a batch yourself: run it as an asyncio task and cancel the task (here through asyncio.wait_for)."""

import asyncio
import os
import sys

from pydantic_ai import ModelRequest

from batchline import model_request_batch

MODEL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BATCHLINE_EXAMPLE_MODEL", "test")


async def main() -> None:
    requests = [("q1", [ModelRequest.user_text_prompt("What is AI?")])]

    task = asyncio.create_task(model_request_batch(MODEL, requests))
    try:
        results = await asyncio.wait_for(task, timeout=300)
    except TimeoutError:
        # wait_for has cancelled the task, and cancelling it cancels the job's provider batches.
        task.cancel()
        print("Batch cancelled due to timeout")
        return
    for result in results:
        if result.is_successful:
            print(f"{result.custom_id}: done")


if __name__ == "__main__":
    asyncio.run(main())

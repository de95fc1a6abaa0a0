"""What a Batch tells about its job: whether it is done, how it ended, and its counts."""

import asyncio
import os
import sys

from pydantic_ai import ModelRequest

from batchline import batch_create

MODEL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BATCHLINE_EXAMPLE_MODEL", "test")


async def main() -> None:
    requests = [("q1", [ModelRequest.user_text_prompt("Hello")])]

    # The `test` model and the emulator finish at once, so the batch is already complete here.
    batch = await batch_create(MODEL, requests)

    print(f"Is complete: {batch.is_complete}")  # finished, whether it succeeded or not
    print(f"Is successful: {batch.is_successful}")  # finished and completed
    print(f"Status: {batch.status.name}")
    print(f"Total: {batch.request_count}")
    print(f"Completed: {batch.completed_count}")
    print(f"Failed: {batch.failed_count}")


if __name__ == "__main__":
    asyncio.run(main())

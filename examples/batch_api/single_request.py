"""A batch of one request, the smallest job there is."""

import asyncio
import os
import sys

from pydantic_ai import ModelRequest

from batchline import model_request_batch

MODEL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BATCHLINE_EXAMPLE_MODEL", "test")


async def main() -> None:
    requests = [("q1", [ModelRequest.user_text_prompt("Hello!")])]

    results = await model_request_batch(MODEL, requests)

    for result in results:
        if result.is_successful:
            print(f"{result.custom_id}: {result.response.parts[0].content}")


if __name__ == "__main__":
    asyncio.run(main())

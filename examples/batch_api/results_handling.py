"""Read a batch's results: each BatchResult carries its custom_id and either a ModelResponse or an error."""

import asyncio
import os
import sys

from pydantic_ai import ModelRequest

from batchline import model_request_batch

MODEL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BATCHLINE_EXAMPLE_MODEL", "test")


async def main() -> None:
    requests = [
        ("request-1", [ModelRequest.user_text_prompt("Hello")]),
        ("request-2", [ModelRequest.user_text_prompt("World")]),
    ]
    results = await model_request_batch(MODEL, requests)

    for result in results:
        print(f"Request: {result.custom_id}")  # the identifier you gave the request
        if result.is_successful:
            response = result.response  # a pydantic-ai ModelResponse, as from a real-time call
            print(f"  Text: {response.parts[0].content}")
        else:
            print(f"  Error: {result.error.code} {result.error.message}")


if __name__ == "__main__":
    asyncio.run(main())

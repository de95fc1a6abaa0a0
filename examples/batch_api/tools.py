"""Offer the model a tool in a batch. A tool call comes back as a ToolCallPart: a batch never runs tools itself."""

import asyncio
import os
import sys

from pydantic import BaseModel
from pydantic_ai import ModelRequest, ToolDefinition
from pydantic_ai.models import ModelRequestParameters

from batchline import model_request_batch

MODEL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BATCHLINE_EXAMPLE_MODEL", "test")


class Calculate(BaseModel):
    """Perform a calculation."""

    expression: str


async def main() -> None:
    calculate = ToolDefinition(
        name="calculate",
        description=Calculate.__doc__,
        parameters_json_schema=Calculate.model_json_schema(),
    )
    # Text is allowed too, so the model may answer directly instead of calling the tool.
    params = ModelRequestParameters(function_tools=[calculate], allow_text_output=True)

    requests = [
        ("calc-1", [ModelRequest.user_text_prompt("What is 15 * 23?")]),
        ("calc-2", [ModelRequest.user_text_prompt("What is 144 / 12?")]),
    ]
    results = await model_request_batch(MODEL, requests, model_request_parameters=params)

    # To answer a tool call: run the tool yourself, then send a follow-up batch with its result.
    for result in results:
        if result.is_successful:
            print(f"{result.custom_id}: {result.response.parts}")


if __name__ == "__main__":
    asyncio.run(main())

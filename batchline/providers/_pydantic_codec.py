"""The codec side the OpenAI and Anthropic adapters share: pydantic-ai models used only to encode and decode.

pydantic-ai's `Model.batch_encode` is async; one event loop runs a whole job's encodes in a row (much cheaper than a
loop per request, and cheaper than `gather`, as encoding never waits). The models are built with a placeholder key:
encoding and decoding send nothing, and the real key lives only in the workers' environment.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Sequence

from pydantic_ai.exceptions import UserError
from pydantic_ai.models.batch import BatchRequest

from ..codec import request_model
from . import _ADAPTERS
from ._templates import Encode, encode_by_shape
from .base import Encoded

PLACEHOLDER_KEY = "batchline-codec-sends-nothing"


def encode_all(requests: Sequence[BatchRequest], encode: Encode) -> list[Encoded]:
    """`encode` every request, once per shape (see `_templates`), in one event loop (in a helper thread when the
    caller already runs a loop)."""

    async def run() -> list[Encoded]:
        return await encode_by_shape(requests, encode)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def model_of(provider: str, default: str, request: BatchRequest) -> str:
    """The bare model name `request` runs on: its own (`model` option), else the job's."""
    name = request_model(request)
    if name is None:
        return default
    prefix, colon, rest = name.partition(":")
    if colon and prefix == provider:
        return rest
    if colon and prefix in _ADAPTERS:  # another provider's model; a name like `ft:gpt-4o:org::id` is kept whole
        raise UserError(
            f"request {request.custom_id!r} names model {name!r}, but this job's requests go to {provider}."
        )
    return name

"""The codec side the three pydantic-ai adapters share: pydantic-ai models used only to encode and decode.

pydantic-ai's `Model.batch_encode` is async; one event loop runs a whole job's encodes in a row (much cheaper than a
loop per request, and cheaper than `gather`, as encoding never waits). The models are built with a placeholder key:
encoding and decoding send nothing, and the real key lives only in the workers' environment.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic_ai.exceptions import UserError
from pydantic_ai.models import Model
from pydantic_ai.models.batch import BatchRequest, EncodedBatchRequest

from ..codec import request_model
from ._templates import Encode, encode_by_shape
from .base import ADAPTERS, Encoded

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
    if colon and prefix in ADAPTERS:  # another provider's model; a name like `ft:gpt-4o:org::id` is kept whole
        raise UserError(
            f"request {request.custom_id!r} names model {name!r}, but this job's requests go to {provider}."
        )
    return name


def plain(request: BatchRequest, name: str, encoded: EncodedBatchRequest) -> Encoded:
    """pydantic-ai's body as it is, grouped by the model it runs on."""
    return Encoded(request.custom_id, encoded.body.encode(), group=name)


@dataclass(frozen=True)
class Encoder:
    """One provider's encode of one request by pydantic-ai (what `encode_all` runs per shape)."""

    provider: str
    """The model prefix of the provider (`openai`), which a request's own model may name."""
    default: str
    """The job's model, for requests that name none."""
    models: Callable[[str], Model]
    """The codec model of a bare model name."""
    refusal: str | None = None
    """When set, a model pydantic-ai runs no batches for is refused with this message (`{name}` in it)."""
    own_models: bool = True
    """Whether a request may name its own model (else all run on `default`)."""
    finish: Callable[[BatchRequest, str, EncodedBatchRequest], Encoded] = plain
    """The stored request made of pydantic-ai's encoded one, given the model name."""

    async def __call__(self, request: BatchRequest) -> Encoded:
        name = model_of(self.provider, self.default, request) if self.own_models else self.default
        model = self.models(name)
        if self.refusal is not None and model.batch_max_requests is None:
            raise UserError(self.refusal.format(name=repr(name)))
        return self.finish(request, name, await model.batch_encode(request))

"""The Anthropic adapter's codec side: Messages API params encoded and results decoded by pydantic-ai's AnthropicModel.

Kept apart from the transport (anthropic.py) so that a worker that only uploads, polls and downloads never imports
pydantic-ai's models or the anthropic SDK: no pool process carries them, and no first task waits on them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import orjson
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelResponse
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.batch import BatchRequest, BatchResult
from pydantic_ai.providers.anthropic import AnthropicProvider as PydanticAIAnthropicProvider

from ..records import StoredResult
from ._pydantic_codec import PLACEHOLDER_KEY, encode_all, model_of
from .anthropic import BETAS_MARK
from .base import Encoded


@functools.lru_cache(maxsize=64)
def codec_model(name: str) -> AnthropicModel:
    return AnthropicModel(name, provider=PydanticAIAnthropicProvider(api_key=PLACEHOLDER_KEY))


def encode_many(default: str, requests: Sequence[BatchRequest]) -> list[Encoded]:
    """Messages API params for `requests`, each on its own model (`default` unless it names one), grouped by betas."""
    return encode_all(requests, functools.partial(_encode, default))


async def _encode(default: str, request: BatchRequest) -> Encoded:
    name = model_of("anthropic", default, request)
    model = codec_model(name)
    if model.batch_max_requests is None:
        raise UserError(f"Anthropic does not serve model {name!r} through Message Batches.")
    encoded = await model.batch_encode(request)
    betas = sorted(orjson.loads(encoded.group).get("betas") or [])
    body = encoded.body.encode()
    if betas:
        # Betas are a header of the whole batch: they make the group, and ride in the stored body until sent.
        body = BETAS_MARK + orjson.dumps(",".join(betas)) + b"," + body[1:]
    return Encoded(request.custom_id, body, group=",".join(betas))


def decode(default: str, result: StoredResult, request: BatchRequest) -> ModelResponse:
    """The `ModelResponse` pydantic-ai's `batch_decode` makes of a stored result."""
    model = codec_model(model_of("anthropic", default, request))
    body = result.body.decode() if result.body else None
    return model.batch_decode(
        BatchResult(custom_id=result.custom_id, status=result.status, body=body),  # type: ignore[arg-type]
        request,
    )

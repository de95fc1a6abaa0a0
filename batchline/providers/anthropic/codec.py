"""The Anthropic adapter's codec side: Messages API params encoded and results decoded by pydantic-ai's AnthropicModel.

Kept apart from the transport so that a worker that only uploads, polls and downloads never imports pydantic-ai's
models or the anthropic SDK: no pool process carries them, and no first task waits on them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import orjson
from pydantic_ai.messages import ModelResponse
from pydantic_ai.models import Model
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.batch import BatchRequest, BatchResult, EncodedBatchRequest
from pydantic_ai.providers.anthropic import AnthropicProvider as PydanticAIAnthropicProvider

from ...records import StoredResult
from .._pydantic_codec import PLACEHOLDER_KEY, Encoder, encode_all, model_of
from ..base import Encoded
from . import wire


@functools.lru_cache(maxsize=64)
def codec_model(name: str) -> AnthropicModel:
    return AnthropicModel(name, provider=PydanticAIAnthropicProvider(api_key=PLACEHOLDER_KEY))


def encode_many(default: str, requests: Sequence[BatchRequest], model: Model | None = None) -> list[Encoded]:
    """Messages API params for `requests`, each on its own model (`default` unless it names one), grouped by betas;
    all by the user's `model` instance when given."""
    refusal = "Anthropic does not serve model {name} through Message Batches."
    if model is not None:
        encoder = Encoder("anthropic", default, lambda _: model, refusal, own_models=False, finish=_with_betas)
    else:
        encoder = Encoder("anthropic", default, codec_model, refusal, finish=_with_betas)
    encoded = encode_all(requests, encoder)
    wire.check_mapped_ids(requests)
    return encoded


def _with_betas(request: BatchRequest, name: str, encoded: EncodedBatchRequest) -> Encoded:
    # Betas are a header of the whole batch: they make the group, and ride in the stored body until sent.
    betas = sorted(orjson.loads(encoded.group).get("betas") or [])
    return Encoded(request.custom_id, wire.with_betas(encoded.body.encode(), betas), group=",".join(betas))


def decode(default: str, result: StoredResult, request: BatchRequest, instance: Model | None = None) -> ModelResponse:
    """The `ModelResponse` pydantic-ai's `batch_decode` makes of a stored result (by the user's instance if given)."""
    model = instance if instance is not None else codec_model(model_of("anthropic", default, request))
    body = result.body.decode() if result.body else None
    if result.status == "errored" and body:
        body = _as_sdk_dumps_it(body)
    return model.batch_decode(
        BatchResult(custom_id=result.custom_id, status=result.status, body=body),  # type: ignore[arg-type]
        request,
    )


def _as_sdk_dumps_it(body: str) -> str:
    """An errored result as pydantic-ai hands it to `batch_decode`: read by the SDK's model and dumped again (its
    field order, and the fields the SDK fills in), so the error pydantic-ai makes of it is the same, byte for byte."""
    from anthropic.types.beta.messages import BetaMessageBatchErroredResult
    from pydantic import ValidationError

    try:
        return BetaMessageBatchErroredResult.model_validate_json(body).model_dump_json()
    except ValidationError:
        return body  # not the SDK's shape: pydantic-ai's decode reads it as it can

"""The Gemini adapter's codec side: requests encoded and results decoded by pydantic-ai's GoogleModel.

Kept apart from the transport so that a worker that only uploads, polls and downloads never imports pydantic-ai's
models or the google-genai SDK: no pool process carries them, and no first task waits on them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import cast

from pydantic_ai.messages import ModelResponse
from pydantic_ai.models import Model
from pydantic_ai.models.batch import BatchRequest, BatchResult, BatchResultStatus
from pydantic_ai.models.google import GoogleModel
from pydantic_ai.providers.google import GoogleProvider

from ...records import StoredResult
from .._pydantic_codec import Encoder, encode_all
from ..base import Encoded


@functools.lru_cache(maxsize=64)
def codec_model(model_name: str) -> GoogleModel:
    """The pydantic-ai model that encodes and decodes; its placeholder key is never sent (encoding sends nothing)."""
    return GoogleModel(model_name, provider=GoogleProvider(api_key="batchline-encodes-only"))


def encode_many(model_name: str, requests: Sequence[BatchRequest], model: Model | None = None) -> list[Encoded]:
    """`generateContent` bodies for `requests`, all on `model_name` (one group); by the user's `model` if given."""
    models = codec_model if model is None else (lambda _: model)
    return encode_all(requests, Encoder("google", model_name, models, own_models=False))


def decode(model_name: str, result: StoredResult, request: BatchRequest, model: Model | None = None) -> ModelResponse:
    """The `ModelResponse` pydantic-ai's `batch_decode` makes of a stored result (by the user's `model` if given)."""
    body = result.body.decode() if result.body else None
    status = cast(BatchResultStatus, result.status)
    return (model or codec_model(model_name)).batch_decode(
        BatchResult(custom_id=result.custom_id, status=status, body=body), request
    )

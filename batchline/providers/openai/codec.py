"""The OpenAI adapter's codec side: requests encoded and results decoded by pydantic-ai's OpenAI models.

Kept apart from the transport so that a worker that only uploads, polls and downloads never imports pydantic-ai's
models or the openai SDK: that saves a pool process about 25 MB and its first task the imports.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import orjson
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelResponse
from pydantic_ai.models import Model
from pydantic_ai.models.batch import BatchRequest, BatchResult
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider as PydanticAIOpenAIProvider

from ...pydantic_private import chat_completion_response
from ...records import StoredResult
from .._pydantic_codec import PLACEHOLDER_KEY, Encoder, encode_all, model_of
from ..base import Encoded
from .fastdecode import fast_decode
from .wire import DEFAULT_BASE_URL


@functools.lru_cache(maxsize=64)
def codec_model(name: str) -> OpenAIResponsesModel:
    """pydantic-ai's model for encoding and decoding `name`; the fixed base URL keeps encoding the same everywhere."""
    return OpenAIResponsesModel(
        name, provider=PydanticAIOpenAIProvider(base_url=DEFAULT_BASE_URL, api_key=PLACEHOLDER_KEY)
    )


@functools.lru_cache(maxsize=16)
def _chat_model(name: str) -> OpenAIChatModel:
    return OpenAIChatModel(name, provider=PydanticAIOpenAIProvider(base_url=DEFAULT_BASE_URL, api_key=PLACEHOLDER_KEY))


def encode_many(default: str, requests: Sequence[BatchRequest], model: Model | None = None) -> list[Encoded]:
    """Responses API bodies for `requests`, each grouped by its model (`default` unless it names its own); all by the
    user's `model` instance when given."""
    refusal = "OpenAI does not serve model {name} through its Batch API."
    if model is not None:
        return encode_all(requests, Encoder("openai", default, lambda _: model, refusal, own_models=False))
    return encode_all(requests, Encoder("openai", default, codec_model, refusal))


def decode(default: str, result: StoredResult, request: BatchRequest, model: Model | None = None) -> ModelResponse:
    """The `ModelResponse` of a stored result: the fast decoder for common shapes, else pydantic-ai's (by the user's
    `model` instance when given)."""
    name = model_of("openai", default, request)
    decoder = model if isinstance(model, OpenAIResponsesModel) else codec_model(name)
    if result.status == "succeeded" and (fast := fast_decode(decoder, result.body, request)) is not None:
        return fast  # a common shape, built straight from the JSON: the ModelResponse pydantic-ai's decode gives
    body = result.body.decode() if result.body else None
    kind = _object_kind(result.body) if result.status == "succeeded" else "response"
    if kind == "chat.completion":
        # A /v1/chat/completions body (raw JSONL jobs, recorded files): pydantic-ai's chat model reads it.
        return _chat_completion(name, result.body)
    if kind != "response":
        raise UserError(
            f"A {kind or 'non-model'} result (raw mode) has no ModelResponse; export it with `batchline results` "
            "or batch_export_sync."
        )
    return decoder.batch_decode(
        BatchResult(custom_id=result.custom_id, status=result.status, body=body),  # type: ignore[arg-type]
        request,
    )


def _object_kind(body: bytes) -> str | None:
    """The `object` a result body says it is (`response`, `chat.completion`, `list` for embeddings)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value.get("object") if isinstance(value, dict) else None


def _chat_completion(name: str, body: bytes) -> ModelResponse:
    from openai.types.chat import ChatCompletion  # the SDK's type, loaded only for this rare kind of result

    completion = ChatCompletion.model_validate_json(body)
    return chat_completion_response(_chat_model(name), completion)

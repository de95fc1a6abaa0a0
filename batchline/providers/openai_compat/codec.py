"""The codec of the OpenAI-compatible batch APIs: Chat Completions bodies made by pydantic-ai's `OpenAIChatModel`
with the provider's own profile, and results decoded by that model.

pydantic-ai's chat model has no `batch_encode`, so the body is the one it would send: its request goes to an
in-memory HTTP transport that keeps the JSON and answers an empty completion. Nothing leaves the process. Each model
is built on the provider pydantic-ai has for it (`TogetherProvider`, `AzureProvider` on an `AsyncAzureOpenAI` client),
or for Groq, whose pydantic-ai provider drives the groq SDK rather than the OpenAI one, on an OpenAI-compatible
provider with `GroqProvider`'s profile.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Sequence
from typing import Any

import httpx2
import orjson
from openai import AsyncAzureOpenAI, AsyncOpenAI
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelResponse
from pydantic_ai.models import Model
from pydantic_ai.models.batch import BatchRequest, EncodedBatchRequest
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.profiles import ModelProfile, merge_profile
from pydantic_ai.profiles.openai import OpenAIJsonSchemaTransformer, OpenAIModelProfile

from ...pydantic_private import chat_completion_response, chat_completions_create
from ...records import StoredResult
from .._pydantic_codec import PLACEHOLDER_KEY, Encoder, encode_all
from ..base import Encoded
from ..openai.codec import decode as openai_decode
from .flavours import AZURE_API_VERSION, FLAVOURS, GROQ, TOGETHER

_BODIES: contextvars.ContextVar[list[bytes] | None] = contextvars.ContextVar("batchline_compat_bodies", default=None)
_EMPTY = {
    "id": "batchline-encode",
    "object": "chat.completion",
    "created": 0,
    "model": "",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}],
}


def _keep(request: httpx2.Request) -> httpx2.Response:
    bodies = _BODIES.get()
    if bodies is not None:
        bodies.append(request.content)
    return httpx2.Response(200, json=_EMPTY)


def _keeping() -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.MockTransport(_keep))


def _client(base_url: str) -> AsyncOpenAI:
    """An OpenAI client on the provider's official base URL (its responses name it), whose calls never leave."""
    return AsyncOpenAI(base_url=base_url, api_key=PLACEHOLDER_KEY, http_client=_keeping())


def _azure_client() -> AsyncAzureOpenAI:
    return AsyncAzureOpenAI(
        azure_endpoint="https://batchline.openai.azure.com",
        api_version=AZURE_API_VERSION,
        api_key=PLACEHOLDER_KEY,
        http_client=_keeping(),
    )


def _groq_profile(name: str) -> ModelProfile | None:
    try:  # pydantic-ai's Groq provider module imports the groq SDK, which a caller may not have
        from pydantic_ai.providers.groq import GroqProvider

        family: ModelProfile | None = GroqProvider.model_profile(name)
    except ImportError:
        from pydantic_ai.profiles.groq import groq_model_profile

        family = groq_model_profile(name)
    return merge_profile(OpenAIModelProfile(json_schema_transformer=OpenAIJsonSchemaTransformer), family)


@functools.cache
def _provider(provider: str) -> Any:
    """pydantic-ai's provider for `provider` (`groq`, `together`, `azure`), on the in-memory client."""
    if provider == "together":
        from pydantic_ai.providers.together import TogetherProvider

        return TogetherProvider(openai_client=_client(TOGETHER.default_base_url))
    if provider == "azure":
        from pydantic_ai.providers.azure import AzureProvider

        return AzureProvider(openai_client=_azure_client())
    from pydantic_ai.providers.openai_compatible import OpenAICompatibleProvider

    base_url = GROQ.default_base_url + GROQ.url_suffix
    return OpenAICompatibleProvider("groq", openai_client=_client(base_url), profile=_groq_profile)


@functools.lru_cache(maxsize=64)
def chat_model(provider: str, name: str) -> OpenAIChatModel:
    """pydantic-ai's chat model for `name` on `provider`, on the in-memory client."""
    return OpenAIChatModel(name, provider=_provider(provider))


def encoding_twin(provider: str, model: OpenAIChatModel) -> OpenAIChatModel:
    """The user's chat model as an encoder: its name, profile and settings on the in-memory client. Its own client
    would send the request, with the user's key."""
    return OpenAIChatModel(
        model.model_name, provider=_provider(provider), profile=model.profile, settings=model.settings
    )


class _ChatBatch:
    """What `Encoder` needs of a model: pydantic-ai's chat model, batch-encoding by its own request."""

    def __init__(self, model: OpenAIChatModel, provider: str) -> None:
        self.model = model
        self.provider = provider
        self.batch_max_requests = FLAVOURS[provider].max_requests

    async def batch_encode(self, request: BatchRequest) -> EncodedBatchRequest:
        return EncodedBatchRequest(custom_id=request.custom_id, group="", body=await encode_body(self.model, request))


async def encode_body(model: OpenAIChatModel, request: BatchRequest) -> str:
    """The Chat Completions body `model` sends for `request`, refusing what a batch line cannot carry."""
    settings: dict[str, Any] = dict(request.model_settings or {})
    if "timeout" in settings:
        raise UserError("A batch request has no per-request `timeout`; the provider runs it.")
    if settings.get("extra_headers"):
        raise UserError("A batch is created with one set of headers; per-request `extra_headers` cannot be honoured.")
    settings.pop("max_retries", None)  # the provider runs a batched request itself: no SDK retries it
    prepared, parameters = model.prepare_request(settings, request.model_request_parameters)  # type: ignore[arg-type]
    bodies: list[bytes] = []
    token = _BODIES.set(bodies)
    try:
        await chat_completions_create(model, list(request.messages), dict(prepared or {}), parameters)
    finally:
        _BODIES.reset(token)
    if len(bodies) != 1:
        raise UserError(f"pydantic-ai's chat model made {len(bodies)} requests for {request.custom_id!r}, not one.")
    body = orjson.loads(bodies[0])
    if body.get("stream"):
        raise UserError("A batch request cannot stream.")
    return orjson.dumps(body).decode()


def codec_model(provider: str, name: str) -> Model:
    return chat_model(provider, name)


def encode_many(
    provider: str, default: str, requests: Sequence[BatchRequest], model: Model | None = None
) -> list[Encoded]:
    """Chat Completions bodies for `requests`, all on the job's model (a batch runs one model): the user's
    `OpenAIChatModel` instance when given, else pydantic-ai's for the provider."""
    chat = encoding_twin(provider, model) if isinstance(model, OpenAIChatModel) else chat_model(provider, default)
    batch = _ChatBatch(chat, provider)
    return encode_all(requests, Encoder(provider, default, lambda _: batch, own_models=False))  # type: ignore[arg-type,return-value]


def decode(
    provider: str, default: str, result: StoredResult, request: BatchRequest, model: Model | None = None
) -> ModelResponse:
    """A succeeded Chat Completion as pydantic-ai's chat model reads it; any other result as the OpenAI adapter
    reads an error, expiry or cancellation (the same output and error file lines)."""
    if result.status != "succeeded":
        return openai_decode(default, result, request)
    chat = model if isinstance(model, OpenAIChatModel) else chat_model(provider, default)
    from openai.types.chat import ChatCompletion

    return chat_completion_response(chat, ChatCompletion.model_validate_json(result.body))

"""Every model form pydantic-ai's batch API takes, mapped to batchline's adapters or refused by name.

A model string's prefix picks the pydantic-ai model class `infer_model` would make, and with it the encoding: batchline
serves a prefix only where its adapter encodes as that class does (`openai:` and `openai-responses:` are
`OpenAIResponsesModel`, `anthropic:` is `AnthropicModel`, `google:` is `GoogleModel` on the Gemini API). `groq:`,
`together:` and `azure:` run on their OpenAI-compatible batch APIs, encoded by `OpenAIChatModel` with the provider's
profile (pydantic-ai's own `groq:` model drives the groq SDK, which has no batch encoding). A prefix whose
model has no batch API in pydantic-ai, or that batchline cannot serve, is refused before anything is stored, naming
the prefix and what is served.

A `Model` instance is not reduced to its name: it encodes (its class, settings and profile decide the body), and the
non-secret parts of its provider (base URL, headers that are no credentials) travel with the job as an `Endpoint`.
Its key stays in the caller's process: the workers use their own.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic_ai.exceptions import UserError

from .errors import BatchInputError
from .providers.endpoints import Endpoint, hidden_credentials, is_official, plain_headers
from .pydantic_private import no_batch_api_message, sdk_custom_headers

if TYPE_CHECKING:
    from pydantic_ai.models import Model

SERVED: dict[str, str] = {
    "openai": "openai",
    "openai-responses": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "groq": "groq",
    "together": "together",
    "azure": "azure",
    "mistral": "mistral",
}
"""pydantic-ai's prefix -> batchline's adapter prefix, for the prefixes whose pydantic-ai model batches."""

SERVED_BY = {"openai": "openai", "anthropic": "anthropic", "google": "gemini", "groq": "groq", "together": "together"}
SERVED_BY |= {"azure": "azure", "mistral": "mistral"}
"""batchline's adapter prefix -> its adapter's name (`Provider.name`)."""
COMPAT = frozenset({"groq", "together", "azure"})
"""The OpenAI-compatible batch APIs, whose `OpenAIChatModel` instances (by their provider's name) batch there."""

SUPPORTED = "'openai:', 'openai-responses:', 'anthropic:', 'google:', 'mistral:', 'groq:', 'together:', 'azure:' "
SUPPORTED += "(a batch deployment's name), or an OpenAIResponsesModel, AnthropicModel or "
SUPPORTED += "GoogleModel (Gemini API) instance, or an OpenAIChatModel on Groq, Together or Azure OpenAI"

_NO_CHAT_BATCH = (
    "pydantic-ai's OpenAIChatModel has no batch API (OpenAI batches reach pydantic-ai through the Responses API); "
    "use 'openai:' or 'openai-responses:'"
)
_AZURE_RESPONSES = "batchline runs Azure OpenAI batches on Chat Completions: use 'azure:<batch deployment>'"

REFUSED: dict[str, str] = {
    "openai-chat": _NO_CHAT_BATCH,
    "azure-responses": _AZURE_RESPONSES,
    "openai-chatgpt": "ChatGPT plan usage serves no Batch API",
    "openai-codex": "the Codex endpoint serves no Batch API",
    "openai-decisions": "pydantic-ai's decisions models have no batch API",
    "google-decisions": "pydantic-ai's decisions models have no batch API",
    "google-cloud": (
        "Vertex AI batch prediction jobs read Cloud Storage or BigQuery, and pydantic-ai's GoogleModel has no batch "
        "API there; batch through the Gemini API with 'google:'"
    ),
    "google-gla": "pydantic-ai no longer knows this prefix; the Gemini API is 'google:'",
    "google-vertex": "pydantic-ai no longer knows this prefix; Vertex AI ('google-cloud:') has no batch API in it",
    "bedrock": "Bedrock batches are Bedrock's own jobs, which pydantic-ai does not run",
}
"""Prefixes pydantic-ai knows whose models batchline does not batch, and why."""


class ModelNotBatchable(NotImplementedError, UserError):
    """A model form batchline's batch adapters do not serve. It is pydantic-ai's `UserError` too, which pydantic-ai's
    own `model_request_batch` raises for a model without a batch API."""

    def __init__(self, message: str) -> None:
        UserError.__init__(self, message)


@dataclass(frozen=True)
class ModelForm:
    """A model as batchline runs it."""

    model: str
    """batchline's model string (`openai:gpt-4o`): the adapter and the model name."""
    instance: Model | None = None
    """The user's pydantic-ai model, which encodes the requests, when it was given as one."""
    endpoint: Endpoint | None = None
    """The instance's base URL and non-secret headers, which travel with the job."""


def refuse(what: str, why: str) -> ModelNotBatchable:
    return ModelNotBatchable(f"batchline cannot batch {what}: {why}. batchline serves {SUPPORTED}.")


def resolve_model(model: object, *, direct: bool = False) -> ModelForm:
    """The `ModelForm` of a model string or pydantic-ai `Model`; a form batchline does not serve raises
    `ModelNotBatchable` (a `NotImplementedError`) naming it. `direct`: as `pydantic_ai.direct` reads it, where `test`
    is pydantic-ai's in-memory `TestModel`, not batchline's `test` provider."""
    from pydantic_ai.models import Model

    if isinstance(model, Model):
        return _instance_form(model)
    if not isinstance(model, str):
        raise BatchInputError(
            f"model must be a string like 'openai:gpt-4o-mini' or a pydantic-ai Model, not {type(model).__name__}."
        )
    prefix, colon, name = model.partition(":")
    if model == "test":
        if direct:
            raise refuse(
                "'test'",
                "to pydantic-ai it is TestModel, which batches in memory, in the caller's process; batchline runs "
                "batches on its workers (its own 'test' provider is batchline.model_request_batch's)",
            )
        return ModelForm(model)
    if not colon:
        if direct:  # pydantic-ai knows no model without its provider's prefix: its `UserError`, as pydantic-ai's
            raise refuse(repr(model), "a model string names its provider first, as in 'openai:gpt-4o-mini'")
        return ModelForm(model)  # `check_model` and `get_provider` name what is wrong with it
    if prefix in SERVED:
        return ModelForm(f"{SERVED[prefix]}:{name}")
    if prefix.startswith("gateway/"):
        raise refuse(f"{prefix + ':'!r}", "the Pydantic AI Gateway serves no batch API")
    if prefix in REFUSED:
        raise refuse(f"{prefix + ':'!r} models", REFUSED[prefix])
    if direct:  # pydantic-ai raises its `UserError` for a model without a batch API: so does a drop-in
        raise refuse(f"{prefix + ':'!r} models", "pydantic-ai has no batch API for them, or does not know the prefix")
    return ModelForm(model)  # `check_model` and `get_provider` refuse any other, naming the prefixes served


def _instance_form(model: Model) -> ModelForm:
    """A `Model` instance: its class picks the adapter, and its provider's base URL and plain headers travel."""
    from pydantic_ai.models.wrapper import WrapperModel

    while isinstance(model, WrapperModel):  # instrumentation and other wrappers batch through the model they wrap
        model = model.wrapped
    kind = type(model).__name__
    prefix, client = _adapter_of(model)
    if prefix is None:
        raise refuse(f"a {kind}", "batchline's adapters batch only the models below")
    if model.batch_max_requests is None and prefix not in COMPAT:  # pydantic-ai's chat model batches through ours
        raise refuse(f"this {kind} ({model.model_name!r})", no_batch_api_message(model).rstrip("."))
    headers = plain_headers(sdk_custom_headers(client))
    for header, attribute in (("OpenAI-Organization", "organization"), ("OpenAI-Project", "project")):
        if isinstance(value := getattr(client, attribute, None), str) and value:
            headers[header] = value
    base_url = str(model.base_url or "")
    if hidden_credentials(base_url):
        raise BatchInputError(
            f"The {kind}'s base URL carries a user, password or query; batchline stores no credentials with a job. "
            "Give the workers the key, and the model a plain base URL."
        )
    if is_official(SERVED_BY[prefix], base_url):
        base_url = ""  # the provider's own: the workers call it as they are configured (a gateway, if they have one)
    endpoint = Endpoint(base_url, tuple(sorted(headers.items()))) if base_url or headers else None
    return ModelForm(f"{prefix}:{model.model_name}", instance=model, endpoint=endpoint)


def _adapter_of(model: Model) -> tuple[str | None, Any]:
    """The adapter prefix of a model's class (None for one batchline does not batch), and its SDK client."""
    if _is(model, "pydantic_ai.models.openai", "OpenAIResponsesModel"):
        return "openai", getattr(model, "client", None)
    if _is(model, "pydantic_ai.models.openai", "OpenAIChatModel"):
        if (system := getattr(model, "system", "")) in COMPAT:  # on Groq, Together or Azure OpenAI
            return system, getattr(model, "client", None)
        raise refuse(f"an OpenAIChatModel ({model.model_name!r})", _NO_CHAT_BATCH)
    if _is(model, "pydantic_ai.models.anthropic", "AnthropicModel"):
        return "anthropic", getattr(model, "client", None)
    if _is(model, "pydantic_ai.models.google", "GoogleModel"):
        return "google", None
    return None, None


def _is(model: Model, module: str, name: str) -> bool:
    """`isinstance(model, module.name)`, without importing a module (and its provider's SDK) that is not loaded: an
    instance of its class means it is."""
    loaded = sys.modules.get(module)
    cls = getattr(loaded, name, None) if loaded is not None else None
    return isinstance(cls, type) and isinstance(model, cls)

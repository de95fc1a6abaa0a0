"""Every model form pydantic-ai's batch API takes is served with the encoding pydantic-ai gives it, or refused by
name before anything is stored; a `Model` instance keeps its class, settings and base URL, never its key."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic_ai import ModelRequest
from pydantic_ai.exceptions import UserError
from pydantic_ai.models import infer_model
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.batch import BatchRequest
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider

import batchline.direct
from batchline import BatchInputError, batch_create_sync
from batchline.config import Settings
from batchline.errors import ProviderRejected
from batchline.model_forms import ModelNotBatchable, resolve_model
from batchline.providers import ProviderContext, get_provider
from batchline.providers.endpoints import Endpoint, plain_headers, untrusted
from batchline.store import Store
from batchline.trusted_urls import listed_for

SECRET = "sk-instance-secret-never-stored-0123456789"
UNTRUSTED = "http://127.0.0.1:9/v1"


def request(custom_id: str = "a") -> BatchRequest:
    return BatchRequest(custom_id=custom_id, messages=[ModelRequest.user_text_prompt("What is 2 + 2?")])


@pytest.fixture
def sdk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys for pydantic-ai's own providers, which `infer_model` makes; the official base URLs."""
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "MISTRAL_API_KEY"):
        monkeypatch.setenv(name, "k")
    for name in (
        "OPENAI_BASE_URL",
        "ANTHROPIC_BASE_URL",
        "GOOGLE_GEMINI_BASE_URL",
        "GOOGLE_API_KEY",
        "MISTRAL_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)


# -- strings ---------------------------------------------------------------------------------------------------------
SERVED = {
    "openai:gpt-4o-mini": "openai:gpt-4o-mini",
    "openai-responses:gpt-4o-mini": "openai:gpt-4o-mini",
    "anthropic:claude-haiku-4-5": "anthropic:claude-haiku-4-5",
    "google:gemini-2.5-flash": "google:gemini-2.5-flash",
}


@pytest.mark.parametrize(("model", "adapter"), SERVED.items())
def test_a_served_prefix_encodes_as_pydantic_ais_model_for_it(sdk_env: None, model: str, adapter: str) -> None:
    form = resolve_model(model, direct=True)
    assert form.model == adapter and form.instance is None
    ours = get_provider(form.model).encode_many([request()])[0]
    theirs = asyncio.run(infer_model(model).batch_encode(request()))
    assert ours.body.decode() == theirs.body or _same_json(ours.body.decode(), theirs.body)


def _same_json(a: str, b: str) -> bool:
    import orjson

    return bool(orjson.loads(a) == orjson.loads(b))


REFUSED = [
    "openai-chat:gpt-4o-mini",
    "azure-responses:gpt-4o",
    "google-cloud:gemini-2.5-flash",
    "google-gla:gemini-2.5-flash",
    "google-vertex:gemini-2.5-flash",
    "bedrock:anthropic.claude-3-haiku",
    "gateway/openai:gpt-4o",
    "openai-chatgpt:gpt-5",
]


@pytest.mark.parametrize("model", REFUSED)
def test_a_prefix_without_a_batch_api_is_refused_by_name(embedded: Settings, model: str) -> None:
    prefix = model.partition(":")[0]
    for direct in (False, True):
        with pytest.raises(ModelNotBatchable, match=f"'{prefix}:'.*'openai:'"):
            resolve_model(model, direct=direct)
    with pytest.raises(NotImplementedError, match=f"'{prefix}:'"):
        batch_create_sync(model, [("a", [ModelRequest.user_text_prompt("q")])], submit_wait=0)
    with pytest.raises(UserError, match=f"'{prefix}:'"):  # what pydantic-ai raises for a model without a batch API
        asyncio.run(batchline.direct.model_request_batch(model, [request()]))


def test_pydantic_ais_chat_model_has_no_batch_api_indeed(sdk_env: None) -> None:
    # openai-chat: is refused rather than sent as Responses API requests: pydantic-ai itself batches no chat model.
    assert OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(api_key="k")).batch_max_requests is None


@pytest.mark.parametrize("model", ["cohere:command-r-plus", "huggingface:meta-llama/Llama-3.3-70B-Instruct"])
def test_another_provider_is_refused_naming_the_supported_prefixes(embedded: Settings, model: str) -> None:
    with pytest.raises(NotImplementedError, match=f"{model!r}.*'openai:'.*'openai-responses:'"):
        batch_create_sync(model, [("a", [ModelRequest.user_text_prompt("q")])], submit_wait=0)


def test_test_is_batchlines_provider_in_its_api_and_refused_in_direct(embedded: Settings) -> None:
    assert resolve_model("test").model == "test"
    with pytest.raises(ModelNotBatchable, match="TestModel"):
        asyncio.run(batchline.direct.model_request_batch("test", [request()]))


# -- instances --------------------------------------------------------------------------------------------------------
def openai_instance(base_url: str, **settings: Any) -> OpenAIResponsesModel:
    provider = OpenAIProvider(base_url=base_url, api_key=SECRET)
    return OpenAIResponsesModel("gpt-4o-mini", provider=provider, settings=settings or None)  # type: ignore[arg-type]


def test_an_instance_keeps_its_class_its_base_url_and_only_its_plain_headers() -> None:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(
        api_key=SECRET, base_url=UNTRUSTED, default_headers={"X-Team": "research", "X-Api-Key": SECRET}
    )
    model = OpenAIResponsesModel("gpt-4o-mini", provider=OpenAIProvider(openai_client=client))
    form = resolve_model(model)
    assert form.model == "openai:gpt-4o-mini" and form.instance is model
    assert form.endpoint is not None and form.endpoint.base_url.rstrip("/") == UNTRUSTED
    assert dict(form.endpoint.headers) == {"X-Team": "research"}
    assert SECRET not in form.endpoint.to_json()

    anthropic = AnthropicModel("claude-haiku-4-5", provider=AnthropicProvider(api_key=SECRET, base_url=UNTRUSTED))
    form = resolve_model(anthropic)
    assert form.model == "anthropic:claude-haiku-4-5" and form.endpoint is not None
    assert form.endpoint.base_url.rstrip("/") == UNTRUSTED


def test_an_instance_without_a_batch_api_is_refused(sdk_env: None) -> None:
    with pytest.raises(ModelNotBatchable, match="OpenAIChatModel"):
        resolve_model(OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(api_key="k")))
    with pytest.raises(ModelNotBatchable, match="TestModel"):
        resolve_model(TestModel())


def test_an_instance_on_an_untrusted_base_url_is_refused_at_create(embedded: Settings, embedded_store: Store) -> None:
    before = embedded_store.job_ids(10_000)
    with pytest.raises(BatchInputError, match="BATCHLINE_TRUSTED_BASE_URLS"):
        batch_create_sync(openai_instance(UNTRUSTED), [("a", [ModelRequest.user_text_prompt("q")])], submit_wait=0)
    with pytest.raises(BatchInputError, match="BATCHLINE_TRUSTED_BASE_URLS"):
        asyncio.run(batchline.direct.model_request_batch(openai_instance(UNTRUSTED), [request()]))
    assert embedded_store.job_ids(10_000) == before


def test_trust_is_the_workers_configured_base_url_and_the_setting() -> None:
    env = {"OPENAI_BASE_URL": "http://proxy.internal:8080/v1"}
    # A worker pointed at a gateway never sends the gateway's key to the official host.
    assert untrusted("openai", "https://api.openai.com/v1", (), env) is not None
    assert untrusted("openai", "https://api.openai.com/v1", (), {}) is None  # no gateway: the official origin
    assert untrusted("openai", "http://proxy.internal:8080/other", (), env) is None
    assert untrusted("openai", "http://elsewhere:1/v1", (), env) is not None
    assert untrusted("openai", "http://elsewhere:1/v1", ("http://elsewhere:1",), env) is None
    assert untrusted("anthropic", "http://proxy.internal:8080", (), env) is not None  # another provider's variable


def test_a_listed_url_scoped_to_one_provider_gets_that_providers_key_alone() -> None:
    """A plain entry was trusted with every provider's key: a job naming `anthropic:` with the base URL of a gateway
    the operator listed for OpenAI had the workers send their Anthropic key there."""
    listed = ("openai=http://gw.internal:8080/v1", "http://shared.internal")
    assert untrusted("openai", "http://gw.internal:8080/v1", listed, {}) is None
    assert untrusted("anthropic", "http://gw.internal:8080/v1", listed, {}) is not None
    assert untrusted("anthropic", "http://shared.internal/v1", listed, {}) is None  # a plain entry: every provider
    assert listed_for("gemini", ("gemini=https://files.example", "openai=https://other.example")) == [
        "https://files.example"
    ]


def test_the_worker_checks_again_before_sending_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import fakeredis

    monkeypatch.setenv("OPENAI_API_KEY", "sk-worker")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    context = ProviderContext(Settings(), Store(fakeredis.FakeRedis(), "mf:").scratch("openai"))
    adapter = get_provider("openai:gpt-4o-mini", context)
    adapter.use_endpoint(Endpoint(UNTRUSTED))
    with pytest.raises(ProviderRejected, match="BATCHLINE_TRUSTED_BASE_URLS"):
        adapter.http  # type: ignore[attr-defined]  # noqa: B018

    trusting = ProviderContext(
        Settings(trusted_base_urls=frozenset({UNTRUSTED})), Store(fakeredis.FakeRedis(), "mf:").scratch("openai")
    )
    adapter = get_provider("openai:gpt-4o-mini", trusting)
    adapter.use_endpoint(Endpoint(UNTRUSTED, (("X-Team", "research"),)))
    http = adapter.http  # type: ignore[attr-defined]
    assert str(http.client.base_url).rstrip("/") == UNTRUSTED
    assert http.client.headers["Authorization"] == "Bearer sk-worker"  # the worker's own key
    assert http.client.headers["X-Team"] == "research"


def test_an_instances_settings_reach_the_encoded_body() -> None:
    model = openai_instance(UNTRUSTED, temperature=0.25, max_tokens=77)
    codec = get_provider("openai:gpt-4o-mini")
    codec.use_model(model)
    body = codec.encode_many([request()])[0].body.decode()
    assert '"temperature":0.25' in body and '"max_output_tokens":77' in body
    assert body == asyncio.run(model.batch_encode(request())).body or _same_json(
        body, asyncio.run(model.batch_encode(request())).body
    )


def test_an_instance_on_the_official_base_url_goes_where_the_workers_are_configured() -> None:
    form = resolve_model(openai_instance("https://api.openai.com/v1"))
    assert form.endpoint is None  # no base URL of its own: a worker with OPENAI_BASE_URL uses it, with its key


@pytest.mark.parametrize(
    "url",
    ["https://user:hunter2@api.openai.com/v1", "https://api.openai.com/v1?key=hunter2", "https://x.test/#hunter2"],
)
def test_a_base_url_carrying_credentials_is_refused_without_repeating_them(url: str) -> None:
    with pytest.raises(BatchInputError, match="carries a user, password or query") as refused:
        resolve_model(openai_instance(url))
    assert "hunter2" not in str(refused.value)
    assert "hunter2" not in (untrusted("openai", url, (url,), {}) or "")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-JWT-Assertion", "eyJhbGciOi"),
        ("cf-access-jwt-assertion", "abc"),
        ("X-Amzn-Oidc-Data", "abc"),
        ("X-Sig", "abc"),
        ("X-Forward", "Bearer abc"),
        ("X-Upstream", "sk-abc"),
    ],
)
def test_headers_that_look_like_credentials_stay_in_the_caller(name: str, value: str) -> None:
    assert plain_headers({name: value, "X-Team": "research"}) == {"X-Team": "research"}


def test_every_known_model_name_is_served_by_its_own_class_or_refused_by_name(sdk_env: None) -> None:
    from pydantic_ai.models import known_model_names
    from pydantic_ai.models.google import GoogleModel
    from pydantic_ai.models.mistral import MistralModel

    from batchline.providers import provider_class

    # Served where pydantic-ai's own model batches, and `mistral:`, whose batch codec batchline builds on MistralModel.
    batching = (OpenAIResponsesModel, AnthropicModel, GoogleModel, MistralModel)
    compat = {"groq", "together", "azure"}
    served: set[str] = set()
    for name in known_model_names():
        prefix = name.partition(":")[0]
        try:
            form = resolve_model(name, direct=True)
            provider_class(form.model)
        except UserError as error:
            assert isinstance(error, NotImplementedError)
            assert f"'{prefix}" in str(error) and "'openai:'" in str(error), name
            continue
        served.add(prefix)
        if prefix in compat:  # their OpenAI-compatible batch APIs, encoded by OpenAIChatModel with their profile
            assert form.model.startswith(f"{prefix}:"), name
            continue
        assert isinstance(infer_model(name), batching), name  # served only where pydantic-ai's own model batches
    assert served - compat == {"openai", "anthropic", "google", "mistral"} and "groq" in served

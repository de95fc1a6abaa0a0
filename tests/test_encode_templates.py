"""Encoding per request shape gives exactly the bytes pydantic-ai gives request by request, or steps aside.

Differential: every job below is encoded twice, by `Provider.encode_many` (templated per shape, `_templates`) and one
request at a time by `Provider.encode` (a lone request is always encoded by pydantic-ai itself), for OpenAI, Anthropic
and Gemini. Bodies, groups and custom_ids must be equal byte for byte; where pydantic-ai refuses a request, both must
refuse it. The texts are chosen to break a careless template: quotes, backslashes, control characters, unicode,
surrounding whitespace (which an encoder may strip), blank and empty texts, and a 100 KB prompt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_ai.messages import ModelRequest, ModelResponse, SystemPromptPart, TextPart, UserPromptPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.batch import BatchRequest, EncodedBatchRequest
from pydantic_ai.output import OutputObjectDefinition
from pydantic_ai.tools import ToolDefinition
from pydantic_core import to_json

from batchline.codec import to_batch_requests
from batchline.errors import BatchInputError
from batchline.providers import Encoded, get_provider, provider_class
from batchline.providers._pydantic_codec import encode_all

TEXTS = [
    "What is the capital of France?",
    'She said "hi", then \\ and / and {"json": [1, 2]}',
    "line one\nline two\ttabbed\r\nline three",
    "   leading spaces",
    "trailing newline\n",
    "\n\n both sides \t\n",
    "ünïcödé — 日本語 — 🎉 \U0001d518",
    "control \x00 \x01 \x08 \x0c \x1b \x1f \x7f characters",
    "separators \u2028 and \u2029, and a BOM \ufeff",
    "</script><!-- & ' > <",
    "p" * 100_000,
]
MODELS = ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "google:gemini-2.5-flash"]


class City(BaseModel):
    name: str
    population: int


TOOLS = ModelRequestParameters(
    function_tools=[
        ToolDefinition(
            name="get_weather",
            description="The weather in a city.",
            parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        )
    ],
    allow_text_output=True,
)
NATIVE = ModelRequestParameters(
    output_mode="native",
    output_object=OutputObjectDefinition(json_schema=City.model_json_schema(), name="City"),
    allow_text_output=False,
)


def shapes(text: str, n: int) -> list[tuple[Any, ...]]:
    """One request of every shape around `text`; `n` keeps the custom_ids unique."""
    return [
        (f"user-{n}", [ModelRequest.user_text_prompt(text)]),
        (f"sys-{n}", [ModelRequest(parts=[SystemPromptPart("You answer briefly."), UserPromptPart(text)])]),
        (f"sys-text-{n}", [ModelRequest(parts=[SystemPromptPart(text), UserPromptPart("Go on.")])]),
        (f"instr-{n}", [ModelRequest(parts=[UserPromptPart(text)], instructions=f"Answer in French. {text}")]),
        (
            f"turns-{n}",
            [
                ModelRequest.user_text_prompt("Name a city."),
                ModelResponse(parts=[TextPart(text)]),
                ModelRequest.user_text_prompt(text),
            ],
        ),
        (f"settings-{n}", [ModelRequest.user_text_prompt(text)], {"temperature": 0.25, "max_tokens": 64 + n % 3}),
        (f"tools-{n}", [ModelRequest.user_text_prompt(text)], TOOLS),
        (f"native-{n}", [ModelRequest.user_text_prompt(text)], NATIVE),
        (f"own-params-{n}", [ModelRequest.user_text_prompt(text)], dataclasses.replace(TOOLS)),
    ]


def job(texts: list[str]) -> list[BatchRequest]:
    items = [item for n, text in enumerate(texts) for item in shapes(text, n)]
    return [request for request, _ in to_batch_requests(items)]


def one_by_one(model: str, requests: list[BatchRequest]) -> list[Encoded | type[Exception]]:
    provider = get_provider(model)
    out: list[Encoded | type[Exception]] = []
    for request in requests:
        try:
            out.append(provider.encode(request))
        except Exception as error:
            out.append(type(error))
    return out


@pytest.mark.parametrize("model", MODELS)
def test_a_job_encodes_to_the_bytes_pydantic_ai_gives_each_request(model: str) -> None:
    requests = job(TEXTS * 2)  # every text twice: the second of each shape and text comes from a template
    expected = one_by_one(model, requests)
    assert all(isinstance(e, Encoded) for e in expected), "every request here is one pydantic-ai encodes"
    encoded = get_provider(model).encode_many(requests)
    assert [e.custom_id for e in encoded] == [r.custom_id for r in requests]
    for got, want in zip(encoded, expected, strict=True):
        assert got == want, got.custom_id


@pytest.mark.parametrize("model", MODELS)
def test_a_job_encodes_to_the_bodies_of_pydantic_ais_public_batch_encode(model: str) -> None:
    """The same, against pydantic-ai's public `Model.batch_encode` called directly on the adapter's codec model."""
    requests = job(TEXTS[:4] * 2)
    codec = importlib.import_module(f"batchline.providers.{provider_class(model).__module__.split('.')[-1]}.codec")
    name = model.partition(":")[2]

    async def public() -> list[EncodedBatchRequest]:
        return [await codec.codec_model(name).batch_encode(request) for request in requests]

    expected = asyncio.run(public())
    encoded = get_provider(model).encode_many(requests)
    assert [e.custom_id for e in encoded] == [p.custom_id for p in expected]
    for got, want in zip(encoded, expected, strict=True):
        assert got.body == want.body.encode(), got.custom_id


@pytest.mark.parametrize("model", MODELS)
def test_blank_texts_take_pydantic_ais_own_path(model: str) -> None:
    requests = job(["", " ", "\n", "fine", ""])
    expected = one_by_one(model, requests)
    if any(not isinstance(e, Encoded) for e in expected):
        with pytest.raises(Exception) as raised:
            get_provider(model).encode_many(requests)
        assert type(raised.value) in expected
    else:
        assert get_provider(model).encode_many(requests) == expected


def test_anthropic_requests_naming_their_own_models_keep_them() -> None:
    items = [
        (f"q{n}", [ModelRequest.user_text_prompt(f"Question {n}?")], {"model": model})
        for n, model in zip(range(12), itertools.cycle(["claude-haiku-4-5", "claude-sonnet-4-5"]), strict=False)
    ]
    requests = [request for request, _ in to_batch_requests(items)]
    encoded = get_provider("anthropic:claude-haiku-4-5").encode_many(requests)
    assert encoded == one_by_one("anthropic:claude-haiku-4-5", requests)
    assert {b'"model":"claude-sonnet-4-5"' in e.body for e in encoded} == {True, False}


@pytest.fixture
def encodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The custom_ids pydantic-ai's own `batch_encode` is called with, by any of the three models."""
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.models.google import GoogleModel
    from pydantic_ai.models.openai import OpenAIResponsesModel

    calls: list[str] = []
    for cls in (OpenAIResponsesModel, AnthropicModel, GoogleModel):

        def counting(original: Any) -> Any:
            async def batch_encode(self: Any, request: BatchRequest) -> Any:
                calls.append(request.custom_id)
                return await original(self, request)

            return batch_encode

        monkeypatch.setattr(cls, "batch_encode", counting(cls.batch_encode))
    return calls


@pytest.mark.parametrize("model", MODELS)
def test_a_shape_costs_two_pydantic_ai_encodes_whatever_the_job_size(model: str, encodes: list[str]) -> None:
    """The point of templates: 2,000 requests of one shape cost two pydantic-ai encodes (the first request, and the
    marked one the template is cut from), not 2,000; this job of nine shapes, eighteen."""
    requests = job([f"Summarise document {n}." for n in range(2_000)])
    encoded = get_provider(model).encode_many(requests)
    assert len(encoded) == 18_000
    assert len(encodes) == 18
    assert b"Summarise document 1234." in encoded[9 * 1_234].body
    assert "Summarise document 1234." not in str(encoded[9 * 1_233].body)


def test_an_unknown_encoder_setting_still_fails_before_anything_is_stored() -> None:
    """A request pydantic-ai refuses is refused even when it would have come from a template."""
    with pytest.raises(BatchInputError, match="timeout"):
        from batchline import batch_create_sync

        batch_create_sync(
            "openai:gpt-4o-mini",
            [(f"q{n}", [ModelRequest.user_text_prompt(f"Q{n}")], {"timeout": 5}) for n in range(5)],
        )


# -- the guards, with encoders that do to a text what a real one might ---------------------------------------------

Transform = Callable[[str], str]


def toy_encoder(transform: Transform, calls: list[str]) -> Callable[[BatchRequest], Awaitable[Encoded]]:
    async def encode(request: BatchRequest) -> Encoded:
        calls.append(request.custom_id)
        texts = [part.content for m in request.messages for part in m.parts if isinstance(part.content, str)]
        body = {"id": request.custom_id, "texts": [transform(t) for t in texts]}
        return Encoded(request.custom_id, to_json(body), group="g")

    return encode


@pytest.mark.parametrize(
    ("transform", "templated"),
    [
        (lambda t: t, True),
        (str.strip, True),  # the padded texts form shapes of their own, whose templates are refused
        (str.upper, False),
        (lambda t: t + " / " + t, False),
    ],
    ids=["as is", "strips", "upper-cases", "repeats"],
)
def test_a_template_that_would_change_a_text_is_not_used(transform: Transform, templated: bool) -> None:
    texts = ["alpha", "  padded  ", "Beta", "  padded too  ", "gamma", "  and a third  ", "delta"]
    requests = [
        BatchRequest(custom_id=f"r{n}", messages=[ModelRequest.user_text_prompt(t)]) for n, t in enumerate(texts)
    ]
    expected = [asyncio.run(toy_encoder(transform, [])(r)) for r in requests]
    calls: list[str] = []
    assert encode_all(requests, toy_encoder(transform, calls)) == expected
    assert (len(calls) < len(requests)) is templated

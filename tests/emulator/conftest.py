"""The emulator's tests use the fixtures other test files get from `batchline.emulator.pytest_plugin`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from batchline.emulator import Emulator
from batchline.emulator.pytest_plugin import emulator, emulator_server

__all__ = ["emulator", "emulator_server"]


@pytest.fixture
def openai_client(emulator: Emulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=emulator.openai_base_url, api_key="test-key", max_retries=0) as client:
        yield client


@pytest.fixture
def anthropic_client(emulator: Emulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=emulator.anthropic_base_url, api_key="test-key", max_retries=0) as client:
        yield client


@pytest.fixture
def gemini_client(emulator: Emulator) -> genai.Client:
    return genai.Client(api_key="test-key", http_options=genai_types.HttpOptions(base_url=emulator.gemini_base_url))


@pytest.fixture
def mistral_client(emulator: Emulator) -> Iterator[Any]:
    from mistralai.client import Mistral

    with Mistral(api_key="test-key", server_url=emulator.mistral_base_url) as client:
        yield client

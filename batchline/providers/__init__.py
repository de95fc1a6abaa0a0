"""Provider adapters, found by the prefix of the model string (`openai:gpt-4o-mini`, `test`)."""

from __future__ import annotations

import importlib

from .base import ADAPTERS, Codec, Encoded, Provider, ProviderContext, Snapshot, Transport

__all__ = [
    "Codec",
    "Encoded",
    "Provider",
    "ProviderContext",
    "Snapshot",
    "Transport",
    "get_provider",
    "provider_class",
    "split_model",
]


def split_model(model: str) -> tuple[str, str]:
    """`"openai:gpt-4o-mini"` -> `("openai", "gpt-4o-mini")`; a bare `"test"` names the test provider's model `test`."""
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"The model must be a string like 'openai:gpt-4o-mini', not {model!r}.")
    prefix, _, name = model.partition(":")
    return prefix, name or prefix


def provider_class(model: str) -> type[Provider]:
    prefix, _ = split_model(model)
    target = ADAPTERS.get(prefix)
    if target is None:
        supported = ", ".join(f"'{p}:'" if p != "test" else "'test'" for p in ADAPTERS)
        raise NotImplementedError(
            f"batchline has no batch adapter for {model!r}; the supported model prefixes are: {supported} "
            "('openai-responses:' is pydantic-ai's other name for 'openai:')."
        )
    module, _, cls = target.partition(":")
    adapter: type[Provider] = getattr(importlib.import_module(module), cls)
    return adapter


def get_provider(model: str, context: ProviderContext | None = None) -> Provider:
    return provider_class(model)(split_model(model)[1], context)

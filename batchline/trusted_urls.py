"""Where a worker's API keys may go besides the origin it is configured with: each provider's official base URL and
the environment variable the workers take theirs from, and the URLs an operator lists (`BATCHLINE_TRUSTED_BASE_URLS`,
`BATCHLINE_TRUSTED_RESULT_HOSTS`), each for every provider's key or, as `openai=https://...`, for one provider's alone.

No batchline import here: the settings check the lists as they load, and the providers use them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

OFFICIAL_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "groq": "https://api.groq.com/openai/v1",
    "together": "https://api.together.xyz/v1",
    "mistral": "https://api.mistral.ai",
}
"""Each adapter's (`Provider.name`) official base URL, trusted by default. Azure OpenAI has none: each resource is its
own origin, and only the one the worker's `AZURE_OPENAI_ENDPOINT` names gets its key."""

BASE_URL_VARIABLES: dict[str, str] = {
    "openai": "OPENAI_BASE_URL",
    "anthropic": "ANTHROPIC_BASE_URL",
    "gemini": "GOOGLE_GEMINI_BASE_URL",
    "groq": "GROQ_BASE_URL",
    "together": "TOGETHER_BASE_URL",
    "azure": "AZURE_OPENAI_ENDPOINT",
    "mistral": "MISTRAL_BASE_URL",
}
"""The environment variable each adapter's workers already take their base URL from, trusted by default."""


def scoped(entry: str) -> tuple[str, str]:
    """A trusted URL as listed, as `(provider, url)`: `openai=https://gw.example/v1` is trusted with that provider's
    key alone, a plain URL (provider "") with every provider's."""
    name, sep, url = entry.partition("=")
    if sep and re.fullmatch(r"[a-z][a-z0-9_-]*", name.strip().lower()):
        return name.strip().lower(), url.strip()
    return "", entry.strip()


def listed_for(provider: str, entries: Iterable[str]) -> list[str]:
    """The listed URLs `provider`'s key may go to: its own entries and the plain ones."""
    return [url for scope, url in map(scoped, entries) if url and scope in ("", provider)]

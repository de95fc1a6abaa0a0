"""How many output tokens a request may produce when it sets no limit of its own: the model's output limit.

OpenAI's Responses API and Gemini let a request leave its output limit out, and then the model may write up to its
own maximum. The table holds the published maximum output of the model families batchline's users batch most; a
model it does not hold falls back to its context window from genai-prices (output can never pass it), and a model
genai-prices does not know either has no bound. Anthropic requires `max_tokens` on every request, so it needs none.
"""

from __future__ import annotations

from dataclasses import dataclass

from .costs import PRICES_PROVIDER


@dataclass(frozen=True)
class OutputLimit:
    tokens: int
    source: str
    """Where the number comes from, as the estimate's method says it."""


# Model name prefix -> the most output tokens one request may produce; the longest matching prefix wins.
MAX_OUTPUT: dict[str, dict[str, int]] = {
    "openai": {
        "gpt-4-turbo": 4_096,
        "gpt-4o": 16_384,
        "gpt-4o-mini": 16_384,
        "gpt-4.1": 32_768,
        "gpt-5": 128_000,
        "o1": 100_000,
        "o1-mini": 65_536,
        "o3": 100_000,
        "o3-mini": 100_000,
        "o4-mini": 100_000,
    },
    "gemini": {
        "gemini-1.5": 8_192,
        "gemini-2.0": 8_192,
        "gemini-2.5": 65_536,
    },
}


def output_limit(provider: str, model_name: str) -> OutputLimit | None:
    """The most output tokens a request to `model_name` may produce when it sets no limit; None when unknown."""
    table = MAX_OUTPUT.get(provider, {})
    matches = [prefix for prefix in table if model_name == prefix or model_name.startswith(prefix + "-")]
    if matches:
        prefix = max(matches, key=len)
        return OutputLimit(table[prefix], f"the {prefix} output limit")
    window = _context_window(provider, model_name)
    if window is not None:
        return OutputLimit(window, "its context window (genai-prices)")
    return None


def _context_window(provider: str, model_name: str) -> int | None:
    provider_id = PRICES_PROVIDER.get(provider)
    if provider_id is None:
        return None
    from genai_prices import Usage, calc_price

    try:
        found = calc_price(Usage(), model_name, provider_id=provider_id)
    except LookupError:
        return None
    window = found.model.context_window
    return window if isinstance(window, int) and window > 0 else None

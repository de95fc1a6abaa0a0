"""A job's tokens and cost before anything is sent (`estimate_cost`, `batchline submit --estimate`), and the
`max_cost` check at create.

No tokenizer of these providers works offline (tiktoken and google-genai's local tokenizer download their files at
first use; Anthropic publishes none for current models), so input tokens are bounded rather than counted:

- lower: the words of the prompt text. The providers' tokenizers never join two words across whitespace (true of
  OpenAI's published encodings; assumed of Anthropic's and Gemini's), so each word is at least one token.
- upper: the UTF-8 bytes of the request body as sent. Byte-level BPE (and SentencePiece with byte fallback) makes
  at most one token per byte, and a body's JSON around each message outweighs the few tokens of a chat template.
  A request with tools gets `TOOL_PROMPT_TOKENS` more, for the system prompt a provider adds for tool use. Images,
  audio and files have no offline bound: a job with any has no upper bound.
- typical: a token per `BYTES_PER_TOKEN` bytes, the usual rate for English text and JSON.

Output is at least 0 and at most each request's own limit (`max_tokens` and its kin), or else the model's limit
(`output_limits`). Costs are genai-prices' batch prices, as `Batch.cost` prices what was used (`costs.cost_of`).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic_ai.models.batch import BatchRequest

from .codec import RawBatchRequest
from .costs import PRICES_PROVIDER, cost_of, usd
from .errors import BatchInputError
from .output_limits import output_limit
from .providers import Encoded, provider_class, split_model
from .request_text import read_body
from .validation import Range, check_number

TOOL_PROMPT_TOKENS = 600
"""Tokens a provider may add to a request with tools beyond their JSON (Anthropic's tool-use system prompt is up to
about 530)."""

BYTES_PER_TOKEN = 4

NO_OFFLINE_TOKENIZER = {
    "openai": "tiktoken downloads its encodings at first use",
    "anthropic": "Anthropic publishes no tokenizer for current Claude models",
    "gemini": "google-genai's local tokenizer downloads its model at first use",
    "groq": "the open models' tokenizers download at first use",
    "together": "the open models' tokenizers download at first use",
    "azure": "tiktoken downloads its encodings at first use",
    "mistral": "mistral-common's tokenizers are not a dependency of batchline",
    "test": "the test provider counts no tokens",
}
"""Why each provider's input is bounded rather than counted: every tokenizer was tried on a machine offline."""

MAX_COST = Range(0, 1e12, " USD", low_open=True)


class TokenEstimate(BaseModel):
    """A job's input or output tokens: a lower and an upper bound (None when none can be set), and how."""

    model_config = ConfigDict(frozen=True)

    lower: int
    upper: int | None
    typical: int | None = None
    """A likely figure between the bounds, where one can be given (input only)."""
    method: str


class CostRange(BaseModel):
    """A job's cost in USD at batch prices: None where it is unknown (no price, or no upper bound on tokens)."""

    model_config = ConfigDict(frozen=True)

    lower: Decimal | None
    upper: Decimal | None
    method: str


class CostEstimate(BaseModel):
    """What a job would use and cost, estimated before anything is sent."""

    model_config = ConfigDict(frozen=True)

    model: str
    requests: int
    input_tokens: TokenEstimate
    output_tokens: TokenEstimate
    cost: CostRange


def estimate(model: str, requests: Sequence[BatchRequest], encoded: Sequence[Encoded]) -> CostEstimate:
    """The estimate of a job whose requests were checked and encoded (as `batch_create` encodes them)."""
    provider = provider_class(model).name
    job_model = split_model(model)[1]
    lower_pairs: dict[str, Counter[tuple[int, int]]] = defaultdict(Counter)
    upper_pairs: dict[str, Counter[tuple[int, int]]] = defaultdict(Counter)
    lower = typical = upper = out_upper = 0
    unbounded_in = unbounded_out = 0
    sources: Counter[str] = Counter()
    for request, enc in zip(requests, encoded, strict=True):
        body, text = read_body(enc.body)
        named = body.get("model")
        name = named if isinstance(named, str) and named else job_model
        url = request.raw.url if isinstance(request, RawBatchRequest) else None
        given = None if text.media else text.size + (TOOL_PROMPT_TOKENS if text.tools else 0)
        made, source = output_bound(provider, name, body, url)
        sources[source] += 1
        lower += text.words
        typical += max(text.words, math.ceil(text.text_bytes / BYTES_PER_TOKEN))
        lower_pairs[name][(text.words, 0)] += 1
        upper += given or 0
        out_upper += made or 0
        unbounded_in += given is None
        unbounded_out += made is None
        if given is not None and made is not None:
            upper_pairs[name][(given, made)] += 1
    count = len(encoded)
    why = NO_OFFLINE_TOKENIZER.get(provider, "no offline tokenizer")
    input_method = (
        f"bounds without a tokenizer ({why}): lower counts the prompt text's words, upper the request's UTF-8 bytes "
        f"(plus {TOOL_PROMPT_TOKENS} per request with tools), typical a token per {BYTES_PER_TOKEN} bytes"
    )
    if unbounded_in:
        input_method += f"; no upper bound: {unbounded_in} of {count} requests carry images, audio or files"
    output_method = "lower 0; upper " + "; ".join(f"{what} ({n} of {count})" for what, n in sources.most_common())
    return CostEstimate(
        model=model,
        requests=count,
        input_tokens=TokenEstimate(
            lower=lower, upper=None if unbounded_in else upper, typical=typical, method=input_method
        ),
        output_tokens=TokenEstimate(lower=0, upper=None if unbounded_out else out_upper, method=output_method),
        cost=_priced(provider, lower_pairs, upper_pairs, complete=not (unbounded_in or unbounded_out)),
    )


def _priced(
    provider: str,
    lower_pairs: dict[str, Counter[tuple[int, int]]],
    upper_pairs: dict[str, Counter[tuple[int, int]]],
    complete: bool,
) -> CostRange:
    lower = _price(provider, lower_pairs, down=True)
    if lower is None:
        names = ", ".join(sorted(lower_pairs))
        return CostRange(lower=None, upper=None, method=f"unknown: genai-prices has no price for {provider}:{names}")
    method = "genai-prices at batch prices: lower prices the input's lower bound and no output, upper both upper bounds"
    if not complete:
        return CostRange(lower=lower, upper=None, method=method + "; no upper bound, as the tokens have none")
    return CostRange(lower=lower, upper=_price(provider, upper_pairs, down=False), method=method)


def _price(provider: str, pairs: dict[str, Counter[tuple[int, int]]], down: bool) -> Decimal | None:
    total = Decimal(0)
    for name, counts in pairs.items():
        if len(counts) > DISTINCT_SIZES and _tiered(provider, name):
            counts = _coarse(counts, down)
        cost = cost_of(provider, name, counts)
        if cost is None:
            return None
        total += cost
    return total


DISTINCT_SIZES = 256
"""Above this many distinct request sizes, a model whose price has tiers is priced on sizes rounded outward to two
significant digits: a tiered price is computed request size by request size (half a millisecond each), and rounding
down a lower bound or up an upper one keeps each a bound."""


def _coarse(counts: Counter[tuple[int, int]], down: bool) -> Counter[tuple[int, int]]:
    rounded: Counter[tuple[int, int]] = Counter()
    for (given, made), n in counts.items():
        rounded[(_two_digits(given, down), _two_digits(made, down))] += n
    return rounded


def _two_digits(value: int, down: bool) -> int:
    step: int = 10 ** max(0, len(str(value)) - 2)
    return value // step * step if down else -(-value // step) * step


def _tiered(provider: str, model_name: str) -> bool:
    from genai_prices import Usage, calc_price
    from genai_prices.types import TieredPrices

    provider_id = PRICES_PROVIDER.get(provider)
    try:
        found = calc_price(Usage(), model_name, provider_id=provider_id)
    except LookupError:
        return False
    return any(isinstance(value, TieredPrices) for value in vars(found.model_price).values())


def output_bound(provider: str, model_name: str, body: dict[str, Any], url: str | None) -> tuple[int | None, str]:
    """The most output tokens one request may make, and where that figure comes from."""
    if url is not None and url.rstrip("/").endswith(("/embeddings", "/moderations")):
        return 0, "none: embeddings and moderations make no output"
    copies = _copies(body)
    own = _own_limit(provider, body)
    if own is not None:
        return own * copies, "the request's own max_tokens"
    if url is not None and url.rstrip("/").endswith("/v1/completions"):
        return 16 * copies, "the completions endpoint's default of 16"
    limit = output_limit(provider, model_name)
    if limit is None:
        return None, f"none: {model_name} has no known output limit"
    return limit.tokens * copies, f"none set: {limit.source}, {limit.tokens:,}"


def _own_limit(provider: str, body: dict[str, Any]) -> int | None:
    if provider == "gemini":
        config = body.get("generationConfig") or body.get("generation_config") or {}
        keys: tuple[str, ...] = ("maxOutputTokens", "max_output_tokens")
        body = config if isinstance(config, dict) else {}
    else:
        keys = ("max_output_tokens", "max_completion_tokens", "max_tokens")
    for key in keys:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def _copies(body: dict[str, Any]) -> int:
    """How many answers a request asks for (OpenAI's `n`, Gemini's `candidateCount`): each makes its own output."""
    config = body.get("generationConfig") or body.get("generation_config") or {}
    for value in (body.get("n"), config.get("candidateCount") if isinstance(config, dict) else None):
        if isinstance(value, int) and not isinstance(value, bool) and value > 1:
            return value
    return 1


# -- the budget at create ---------------------------------------------------------------------------------------------
def check_max_cost(value: object) -> Decimal | None:
    """`max_cost` as a Decimal of USD above 0, or BatchInputError naming it; None for no budget."""
    if value is None:
        return None
    number = check_number("max_cost", value, MAX_COST)
    return value if isinstance(value, Decimal) else Decimal(str(number))


def refuse_over_budget(found: CostEstimate, max_cost: Decimal) -> None:
    """Refuse a job whose cost cannot stay within `max_cost`: its lower bound passes it, or it has no price."""
    lower = found.cost.lower
    if lower is None:
        raise BatchInputError(
            f"max_cost needs a price for the job's model, and genai-prices has none for {found.model}; nothing was "
            "stored or sent (leave max_cost out to run the job without a budget)."
        )
    if lower > max_cost:
        raise BatchInputError(
            f"this job costs at least {usd(lower)} ({found.input_tokens.lower:,} input tokens at the least, at batch "
            f"prices, before any output), more than max_cost {usd(max_cost)}; nothing was stored or sent."
        )

"""Token usage read from stored result bodies, and its cost at batch prices (genai-prices, the data pydantic-ai's
`ModelResponse.cost()` prices a batch response with). The store sums each job's usage as its results arrive; the
job's `Batch.cost` and the fetch spans price it here."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from .providers import provider_class, split_model
from .providers.anthropic.wire import usage_of as anthropic_usage
from .providers.gemini.wire import usage_of as gemini_usage
from .providers.mistral.wire import usage_of as mistral_usage
from .providers.openai.wire import usage_of as openai_usage
from .records import JobRecord, UsageReader

_READERS: dict[str, UsageReader] = {
    "openai": openai_usage,
    "anthropic": anthropic_usage,
    "gemini": gemini_usage,
    "mistral": mistral_usage,
}
_READERS |= {"groq": openai_usage, "together": openai_usage, "azure": openai_usage}  # Chat Completions `usage`

PRICES_PROVIDER = {"openai": "openai", "anthropic": "anthropic", "gemini": "google", "mistral": "mistral"}
PRICES_PROVIDER |= {
    "groq": "groq",
    "together": "together",
}  # an Azure deployment's name is no model name genai-prices knows
"""genai-prices' provider id for each batchline provider that bills tokens."""

BATCH = {"processing": "batch"}
"""The price context pydantic-ai gives a batch response: genai-prices then applies the batch discount."""


def usage_reader(provider: str) -> UsageReader | None:
    """The `(input, output)` token reader of a provider's stored bodies; None for one that reports no usage. Ingest
    reads with it each succeeded body whose adapter read no tokens with its line (`read_results`): one more parse."""
    return _READERS.get(provider)


def cost_of(provider: str, model_name: str, pairs: Counter[tuple[int, int]]) -> Decimal | None:
    """The batch-priced cost in USD of these `(input, output)` requests; None when genai-prices does not know the
    model (never a made-up 0)."""
    provider_id = PRICES_PROVIDER.get(provider)
    if provider_id is None or not pairs:
        return None
    from genai_prices import Usage, calc_price
    from genai_prices.types import TieredPrices

    def price(given: int, made: int) -> Decimal:
        usage = Usage(input_tokens=given, output_tokens=made)
        return calc_price(usage, model_name, provider_id=provider_id, price_context=BATCH).total_price

    requests = sum(pairs.values())
    given = sum(i * n for (i, _), n in pairs.items())
    made = sum(o * n for (_, o), n in pairs.items())
    try:
        whole = calc_price(
            Usage(input_tokens=given, output_tokens=made), model_name, provider_id=provider_id, price_context=BATCH
        )
    except LookupError:
        return None
    prices = vars(whole.model_price).values()
    if any(isinstance(value, TieredPrices) for value in prices):
        return sum((price(i, o) * n for (i, o), n in pairs.items()), Decimal(0))
    # Linear prices: the summed usage costs what its requests cost one by one, but for a per-request fee, once each.
    fee = getattr(whole.model_price, "requests_kcount", None)
    return whole.total_price + (fee * (requests - 1) / 1000 if isinstance(fee, Decimal) else Decimal(0))


def cost_of_totals(
    provider: str, model_name: str, input_tokens: int, output_tokens: int, requests: int
) -> Decimal | None:
    """The batch-priced cost in USD of `requests` requests that used these tokens in all; None when genai-prices does
    not know the model. 0 for a known model before any request has succeeded.

    Only the totals are kept, so a price tiered by a request's size (a long-context tier) is applied as if every
    request were the job's average one: exact for linear prices, and for tiers whenever the requests fall in one."""
    if requests <= 0:
        known = cost_of(provider, model_name, Counter({(0, 0): 1}))
        return None if known is None else Decimal(0)
    given, extra_in = divmod(input_tokens, requests)
    made, extra_out = divmod(output_tokens, requests)
    # Requests of the average size, the remainder on one of them: the same totals, each request in the average's tier.
    pairs = Counter({(given, made): requests - 1})
    pairs[(given + extra_in, made + extra_out)] += 1
    return cost_of(provider, model_name, pairs)


def job_cost(job: JobRecord) -> Decimal | None:
    """The batch-priced cost in USD of a job's token usage, from its totals at the job's model; None when genai-prices
    does not know the model."""
    try:
        provider, name = provider_class(job.model).name, split_model(job.model)[1]
    except (ValueError, NotImplementedError):
        return None
    if job.kind == "embedding" and job.succeeded and not job.input_tokens:
        return None  # the provider reported no tokens for its vectors: unknown, not free
    return cost_of_totals(provider, name, job.input_tokens, job.output_tokens, job.succeeded)


def usd(amount: Decimal) -> str:
    """An amount in USD as people read it: `$12.50`, `$0.50`, `$0.000017` (batch costs are small), `$3.20e-08`."""
    if amount >= 1:
        return f"${amount:,.2f}"
    if amount != 0 and amount < Decimal("0.000001"):
        return f"${amount:.2e}"
    digits = f"{amount:.6f}".rstrip("0")
    return "$" + (digits + "0" * max(0, 2 - len(digits.partition(".")[2])))

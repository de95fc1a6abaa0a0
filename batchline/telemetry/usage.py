"""Token usage read from the stored result bodies, and its cost at batch prices (genai-prices, the data pydantic-ai's
`ModelResponse.cost()` prices a batch response with)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal

from ..providers.anthropic.wire import usage_of as anthropic_usage
from ..providers.gemini.wire import usage_of as gemini_usage
from ..providers.openai.wire import usage_of as openai_usage

UsageReader = Callable[[bytes], tuple[int, int]]

_READERS: dict[str, UsageReader] = {"openai": openai_usage, "anthropic": anthropic_usage, "gemini": gemini_usage}

PRICES_PROVIDER = {"openai": "openai", "anthropic": "anthropic", "gemini": "google"}
"""genai-prices' provider id for each batchline provider that bills tokens."""

BATCH = {"processing": "batch"}
"""The price context pydantic-ai gives a batch response: genai-prices then applies the batch discount."""


def usage_reader(provider: str) -> UsageReader | None:
    """The `(input, output)` token reader of a provider's stored bodies; None for one that reports no usage."""
    return _READERS.get(provider)


class Tally:
    """Passes a part's results through on their way to the store, adding up the token usage of the succeeded ones.

    Each succeeded result's `(input, output)` pair is counted, so a price that changes with a request's size (a
    long-context tier) is applied per request, as the provider bills it."""

    def __init__(self, reader: UsageReader | None) -> None:
        self.reader = reader
        self.pairs: Counter[tuple[int, int]] = Counter()
        self.results = 0
        self.succeeded = 0

    def __call__(self, results: Iterable[tuple[str, str, bytes]]) -> Iterator[tuple[str, str, bytes]]:
        reader = self.reader
        for result in results:
            self.results += 1
            if result[1] == "succeeded":
                self.succeeded += 1
                if reader is not None:
                    self.pairs[reader(result[2])] += 1
            yield result

    @property
    def input_tokens(self) -> int:
        return sum(given * n for (given, _), n in self.pairs.items())

    @property
    def output_tokens(self) -> int:
        return sum(made * n for (_, made), n in self.pairs.items())


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

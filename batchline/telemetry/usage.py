"""A fetch's token usage, counted for its span (the pricing and the readers live in `batchline.costs`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from ..records import ReadResult, UsageReader, tokens_of


class Tally:
    """Counts a part's results on their way to the store, and the token usage of the succeeded ones.

    Each succeeded result leaves with its tokens (`records.tokens_of`: those its adapter read with the line, else what
    the provider's reader reads from its body), so the store reads no body again. The tally keeps each `(input,
    output)` pair, so a price that changes with a request's size (a long-context tier) is applied per request, as the
    provider bills it."""

    def __init__(self, reader: UsageReader | None) -> None:
        self.reader = reader
        self.pairs: Counter[tuple[int, int]] = Counter()
        self.results = 0

    def __call__(self, results: Iterable[ReadResult]) -> Iterator[ReadResult]:
        for result in results:
            self.results += 1
            if result[1] == "succeeded":
                tokens = tokens_of(result, self.reader)
                self.pairs[tokens] += 1
                result = (*result[:3], tokens)
            yield result

    @property
    def input_tokens(self) -> int:
        return sum(given * n for (given, _), n in self.pairs.items())

    @property
    def output_tokens(self) -> int:
        return sum(made * n for (_, made), n in self.pairs.items())

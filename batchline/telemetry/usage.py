"""A fetch's token usage, counted for its span (the pricing and the readers live in `batchline.costs`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from ..records import UsageReader


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

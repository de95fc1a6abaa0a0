"""A fetch's token usage, counted for its span (the pricing and the readers live in `batchline.costs`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from ..records import ReadResult, UsageReader


class Tally:
    """Counts a part's results on their way to the store, and the token usage of the succeeded ones.

    The tokens an adapter read with the line pass by here; the store reads any other succeeded body's once (`read`,
    given to `Store.add_results` as its reader). The tally keeps each `(input, output)` pair, so a price that changes
    with a request's size (a long-context tier) is applied per request, as the provider bills it."""

    def __init__(self, reader: UsageReader | None) -> None:
        self.reader = reader
        self.pairs: Counter[tuple[int, int]] = Counter()
        self.results = 0

    def __call__(self, results: Iterable[ReadResult]) -> Iterator[ReadResult]:
        for result in results:
            self.results += 1
            if result[3] is not None and result[1] == "succeeded":  # the store takes these tokens, not `read`'s
                self.pairs[result[3]] += 1
            yield result

    def read(self, body: bytes) -> tuple[int, int]:
        """A succeeded body's usage, by the provider's reader, counted here too."""
        pair = self.reader(body) if self.reader is not None else (0, 0)
        self.pairs[pair] += 1
        return pair

    @property
    def input_tokens(self) -> int:
        return sum(given * n for (given, _), n in self.pairs.items())

    @property
    def output_tokens(self) -> int:
        return sum(made * n for (_, made), n in self.pairs.items())

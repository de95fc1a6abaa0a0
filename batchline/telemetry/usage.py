"""A fetch's token usage, counted for its span (the pricing and the readers live in `batchline.costs`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from ..records import UsageReader


class Tally:
    """Counts a part's results on their way to the store, and the token usage of the succeeded ones.

    The store reads each succeeded body's usage once (`read`, given to `Store.add_results` as its reader), and the
    tally keeps each `(input, output)` pair, so a price that changes with a request's size (a long-context tier) is
    applied per request, as the provider bills it."""

    def __init__(self, reader: UsageReader | None) -> None:
        self.reader = reader
        self.pairs: Counter[tuple[int, int]] = Counter()
        self.results = 0

    def __call__(self, results: Iterable[tuple[str, str, bytes]]) -> Iterator[tuple[str, str, bytes]]:
        for result in results:
            self.results += 1
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

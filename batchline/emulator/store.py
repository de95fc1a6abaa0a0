"""The emulator's state: stored files, batches, fault counters and call statistics.

Uploaded inputs are kept as bytes with line offsets, not as parsed objects: a request is parsed again when its
answer is written. Output files are not stored at all; they are generated line by line when downloaded.
All of it is touched from the server's event loop only (downloads read immutable bytes from a worker thread).
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .config import BatchFault, EmulatorConfig, Faults, HttpFault, Provider, RequestFault

_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyz"
_MIXED = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def digest_id(alphabet: str, length: int, *parts: object) -> str:
    """A deterministic id of `length` characters from `alphabet`, derived from `parts`."""
    number = int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest(), "big")
    chars = []
    for _ in range(length):
        number, rest = divmod(number, len(alphabet))
        chars.append(alphabet[rest])
    return "".join(chars)


class RequestSet:
    """A batch's requests: JSONL bytes, one request per line, with each line's offsets and custom_id."""

    def __init__(self, data: bytes, starts: array[int], ends: array[int], custom_ids: list[str]) -> None:
        self.data = data
        self.starts = starts
        self.ends = ends
        self.custom_ids = custom_ids

    @classmethod
    def from_lines(cls, lines: list[tuple[int, int]], data: bytes, custom_ids: list[str]) -> RequestSet:
        return cls(data, array("q", (s for s, _ in lines)), array("q", (e for _, e in lines)), custom_ids)

    def __len__(self) -> int:
        return len(self.custom_ids)

    def line(self, index: int) -> bytes:
        return self.data[self.starts[index] : self.ends[index]]


def split_lines(data: bytes) -> list[tuple[int, int]]:
    """The (start, end) offsets of the non-blank lines of `data`."""
    spans: list[tuple[int, int]] = []
    start = 0
    size = len(data)
    while start < size:
        end = data.find(b"\n", start)
        if end < 0:
            end = size
        if data[start:end].strip():
            stop = end - 1 if end > start and data[end - 1 : end] == b"\r" else end
            spans.append((start, stop))
        start = end + 1
    return spans


@dataclass
class FileRecord:
    """A stored or generated file. `content` holds an upload; `generate` yields a generated file's bytes."""

    id: str
    provider: Provider
    purpose: str
    filename: str
    created_at: float
    content: bytes | None = None
    generate: Callable[[], Iterator[bytes]] | None = None
    size: int | None = None
    expires_at: float | None = None
    mime_type: str = "application/jsonl"
    display_name: str | None = None

    def chunks(self) -> Iterator[bytes]:
        if self.content is not None:
            view = memoryview(self.content)
            for offset in range(0, len(view), 1 << 20):
                yield bytes(view[offset : offset + (1 << 20)])
        elif self.generate is not None:
            yield from self.generate()

    def byte_size(self) -> int:
        """The file's size; a generated file is generated once (and thrown away) to count it."""
        if self.size is None:
            self.size = len(self.content) if self.content is not None else sum(len(chunk) for chunk in self.chunks())
        return self.size


@dataclass
class BatchRecord:
    """A batch of any provider; `stage` indexes the provider's stages (see lifecycle.py)."""

    id: str
    provider: Provider
    created_at: float
    requests: RequestSet
    model: str | None
    errored: frozenset[int]
    fault: BatchFault | None
    request_fault_kinds: dict[int, RequestFault]
    stage: int = 0
    stage_started: float = 0.0
    cancelling: bool = False
    outcome: str | None = None  # completed, failed, expired, cancelled
    done: int = 0
    times: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    _order: list[int] | None = None
    _errored_prefix: array[int] | None = None

    @property
    def total(self) -> int:
        return len(self.requests)

    @property
    def ended(self) -> bool:
        return self.outcome is not None

    def order(self, seed: int) -> list[int]:
        """The (deterministically shuffled) order requests are run and their results written in."""
        if self._order is None:
            order = list(range(self.total))
            random.Random(f"{seed}:{self.id}").shuffle(order)
            self._order = order
        return self._order

    def errored_among_first(self, seed: int, count: int) -> int:
        """How many of the first `count` requests run failed."""
        if not self.errored:
            return 0
        if self._errored_prefix is None:
            prefix = array("q", [0])
            running = 0
            for index in self.order(seed):
                running += index in self.errored
                prefix.append(running)
            self._errored_prefix = prefix
        return self._errored_prefix[count]


def _matches(rule_provider: str | None, provider: str) -> bool:
    return rule_provider is None or rule_provider == provider


class State:
    """Everything the emulator holds; `reset()` forgets it all but the configuration's timing and template."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock_offset = 0.0
        self.files: dict[str, FileRecord] = {}
        self.batches: dict[str, BatchRecord] = {}
        self.upload_sessions: dict[str, dict[str, Any]] = {}
        self.counter = 0
        self.stats_created: dict[str, Counter[str]] = {
            p: Counter() for p in ("openai", "anthropic", "gemini", "mistral")
        }
        self.calls: Counter[str] = Counter()
        self.http_used: dict[int, int] = {}
        self.received: dict[str, list[str]] = {p: [] for p in self.stats_created}
        """Each provider's custom_ids, in the order its batches brought them: what was sent, and how often."""

    def reset(self) -> None:
        self.files.clear()
        self.batches.clear()
        self.upload_sessions.clear()
        self.clock_offset = 0.0
        self.calls.clear()
        self.http_used.clear()
        for counter in self.stats_created.values():
            counter.clear()
        for ids in self.received.values():
            ids.clear()
        self.config.faults = Faults()

    def now(self) -> float:
        return time.time() + self.clock_offset

    def new_id(self, provider: str, alphabet: str = _ALNUM, length: int = 24) -> str:
        self.counter += 1
        return digest_id(alphabet, length, provider, self.counter, time.time_ns())

    def new_mixed_id(self, provider: str, length: int) -> str:
        return self.new_id(provider, _MIXED, length)

    def set_faults(self, faults: Faults) -> None:
        self.config.faults = faults
        self.http_used.clear()

    # Faults -----------------------------------------------------------------------------------------------------

    def take_http_fault(self, provider: str, method: str, path: str) -> HttpFault | None:
        """The first HTTP fault matching this request that still has uses left (and uses it up)."""
        for position, fault in enumerate(self.config.faults.http):
            if not _matches(fault.provider, provider):
                continue
            if fault.method and fault.method.upper() != method.upper():
                continue
            if fault.path and not re.search(fault.path, path):
                continue
            used = self.http_used.get(position, 0)
            if fault.times is not None and used >= fault.times:
                continue
            self.http_used[position] = used + 1
            return fault
        return None

    def take_batch_fault(self, provider: Provider) -> BatchFault | None:
        faults = self.config.faults.batches
        for position, fault in enumerate(faults):
            if not _matches(fault.provider, provider):
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del faults[position]
            return fault
        return None

    def request_faults(self, provider: Provider, custom_ids: list[str]) -> dict[int, RequestFault]:
        """The requests (by index) that fail, with the fault that makes them."""
        chosen: dict[int, RequestFault] = {}
        for fault in self.config.faults.requests:
            if not _matches(fault.provider, provider):
                continue
            ids = set(fault.custom_ids)
            pattern = re.compile(fault.pattern) if fault.pattern else None
            for index, custom_id in enumerate(custom_ids):
                if index not in chosen and (custom_id in ids or (pattern is not None and pattern.search(custom_id))):
                    chosen[index] = fault
        return chosen

    # Stats ------------------------------------------------------------------------------------------------------

    def count_call(self, key: str) -> None:
        self.calls[key] += 1

    def count_created(self, provider: str, what: str) -> None:
        self.stats_created[provider][what] += 1

    def add_batch(self, batch: BatchRecord) -> None:
        """Keep a batch just created, and count it and the requests it brought."""
        self.batches[batch.id] = batch
        self.count_created(batch.provider, "batches")
        self.received[batch.provider].extend(batch.requests.custom_ids)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            provider: {
                "batches_created": counter["batches"],
                "files_created": counter["files"],
                "requests_received": len(self.received[provider]),
            }
            for provider, counter in self.stats_created.items()
        }
        result["calls"] = dict(sorted(self.calls.items()))
        result["batches"] = len(self.batches)
        result["files"] = len(self.files)
        return result

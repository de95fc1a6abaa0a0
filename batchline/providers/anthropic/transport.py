"""The Anthropic adapter's worker side: Message Batches over HTTP.

A custom_id Anthropic would refuse is sent as a hash of itself (see wire.py), and mapped back from a hash in the
adapter's scratch (`{prefix}anthropic:ids:{batch_id}`), written with the batch id. Anthropic batches cannot be found
by listing (no metadata), so nothing slow stands between the create call and the pipeline recording its id.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import suppress
from typing import ClassVar, cast

from ...errors import BrokenDownload, ProviderRejected
from ...records import ReadResult
from .._jsonl import FileChunks, iter_json_lines, spooled
from ..base import Snapshot
from ..http import HTTPTransport
from . import wire


class AnthropicTransport(HTTPTransport):
    name: ClassVar[str] = "anthropic"
    can_find = False
    batches_path = wire.BATCHES

    def client_config(self, environ: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        return client_config(environ)

    def to_snapshot(self, batch: object) -> Snapshot:
        return wire.to_snapshot(batch)

    def ids_key(self, batch_id: str) -> str:
        """Where the ids sent as hashes are mapped back to the custom_ids, for one batch."""
        return self.context.scratch.key("ids", batch_id)

    def create(
        self, job_id: str, part: int, requests: Iterable[tuple[str, bytes]], count: int, group: str = ""
    ) -> Snapshot:
        http = self.http
        mapped: dict[str, str] = {}
        betas: list[str] = []
        with spooled(wire.create_body(requests, mapped, betas)) as (file, size):
            headers = {"content-type": "application/json", "content-length": str(size)}
            if betas:
                headers["anthropic-beta"] = betas[0]
            answer = http.request("POST", wire.BATCHES, content=FileChunks(file), headers=headers, idempotent=False)
        snapshot = wire.created_snapshot(answer.content)
        if mapped:
            self._save_ids(snapshot.id, mapped)
        return snapshot

    def _save_ids(self, batch_id: str, mapped: dict[str, str]) -> None:
        scratch = self.context.scratch
        key = self.ids_key(batch_id)
        pipe = scratch.redis.pipeline(transaction=True)
        items = list(mapped.items())
        for start in range(0, len(items), 1000):
            pipe.hset(key, mapping=dict(items[start : start + 1000]))
        pipe.expire(key, scratch.ttl)
        pipe.execute()

    def read_results(self, batch: Snapshot) -> Iterator[ReadResult]:
        if not batch.ended:  # a stale snapshot (a poll raced the one that saw the end): ask again
            batch = self.status(batch.id)
        url = batch.details.get("results_url")
        if not url:
            return
        key = self.ids_key(batch.id)
        has_mapped = bool(self.context.scratch.redis.exists(key))
        chunk: list[ReadResult] = []
        # The URL Anthropic names, never one built here; ProviderHTTP refuses it unless it is on a trusted origin.
        try:
            with self.http.stream("GET", url) as response:
                for line in iter_json_lines(response, f"anthropic: results of {batch.id}"):
                    chunk.append(wire.read_result(line))
                    if len(chunk) == 500:
                        yield from self._original_ids(key, chunk) if has_mapped else chunk
                        chunk = []
        except BrokenDownload:
            # What arrived whole is kept: a body that broke off after its last line (a Content-Length that lied)
            # may have brought every result already.
            yield from self._original_ids(key, chunk) if has_mapped else chunk
            raise
        yield from self._original_ids(key, chunk) if has_mapped else chunk

    def _original_ids(self, key: str, chunk: list[ReadResult]) -> list[ReadResult]:
        sent = [result[0] for result in chunk if result[0].startswith(wire.MAPPED_PREFIX)]
        if not sent:
            return chunk
        found = cast(list[bytes | None], self.context.scratch.redis.hmget(key, sent))
        back = {s: f.decode() for s, f in zip(sent, found, strict=True) if f is not None}
        return [(back.get(cid, cid), status, body, tokens) for cid, status, body, tokens in chunk]

    def unrun(self, batch: Snapshot) -> tuple[str, bytes]:
        """Expired and cancelled as such; otherwise an errored result in Anthropic's own shape."""
        if batch.state in ("expired", "cancelled"):
            return super().unrun(batch)
        return "errored", wire.unrun_error(batch)

    def cleanup(self, batch: Snapshot) -> None:
        # The results are stored: the id map has done its work. The batch itself stays for Anthropic's 29 days.
        with suppress(Exception):
            self.context.scratch.redis.delete(self.ids_key(batch.id))


def client_config(environ: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """Base URL and headers from the SDK's environment names. The key is checked before any HTTP call."""
    key = environ.get("ANTHROPIC_API_KEY", "").strip()
    if not key:
        raise ProviderRejected(
            "ANTHROPIC_API_KEY is not set in the worker's environment; the anthropic adapter needs it to reach "
            "Message Batches.",
            401,
        )
    base_url = environ.get("ANTHROPIC_BASE_URL", "").strip() or wire.DEFAULT_BASE_URL
    return base_url, {"x-api-key": key, "anthropic-version": wire.API_VERSION}

"""The Gemini adapter's worker side: the Gemini API's batch mode over its REST API (api.py).

A part goes inline while its `batchGenerateContent` body stays under the 20 MB inline limit, else as a JSONL file
through the Files API's resumable upload (up to 2 GB); spool.py makes that choice while the requests stream by.

The link between a request and its result: file results carry the `key` each line was sent with (the custom_id).
Inline responses carry no key, so their order is the only link: the custom_ids in the order sent are written to the
adapter's scratch (`{prefix}gemini:{job}:{part}:ids`, with the part's mode and count in `{prefix}gemini:{job}:{part}`)
before the batch is created, and results are matched by position against them. The batch's display name,
`batchline:<job>:<part>`, leads from the batch to that list, and lets a batch whose id was lost be found again by
listing.

A file uploaded for a create that then failed is deleted when Gemini refused the batch; after a lost answer it is
kept (the batch may exist and read it), and a file left by a worker that died between upload and create expires on
its own after 48 hours.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, cast

from ...errors import ProviderRejected, TransientProviderError, for_log
from ...records import ReadResult
from ...trusted_urls import listed_for
from ..base import SCRATCH_CHUNK, ProviderContext, Snapshot, TransportBase, as_dict
from ..endpoints import Endpoint
from . import wire
from .api import GeminiAPI, credentials
from .spool import PartInput

log = logging.getLogger("batchline.gemini")


class GeminiTransport(TransportBase):
    name: ClassVar[str] = "gemini"
    can_find = True
    inline_limit: ClassVar[int] = wire.INLINE_LIMIT
    """Parts whose inline body would reach this many bytes go as a file instead."""

    def __init__(self, model_name: str, context: ProviderContext | None = None) -> None:
        super().__init__(model_name.removeprefix("models/"), context)
        self.api = GeminiAPI(trusted=listed_for("gemini", context.settings.trusted_result_hosts) if context else ())

    def use_endpoint(self, endpoint: Endpoint) -> None:
        self.api.use_endpoint(endpoint, self.context.settings.trusted_base_urls if self._context is not None else ())

    def is_transient(self, status: str, body: bytes) -> bool:
        return super().is_transient(status, body) or (status == "errored" and wire.is_transient(body))

    # -- the durable link between a part and its batch --------------------------------------------------------------
    def part_key(self, job_id: str, part: int, *suffix: str) -> str:
        """The part's mode and count (a hash), or with suffix `ids` its inline custom_ids in order (a list)."""
        return self.context.scratch.key(job_id, part, *suffix)

    def _remember(self, job_id: str, part: int, spool: PartInput) -> None:
        """Write the part's mode, count and (inline) custom_ids in order, atomically, before the batch exists."""
        scratch = self.context.scratch
        ids_key, meta_key = self.part_key(job_id, part, "ids"), self.part_key(job_id, part)
        pipe = scratch.redis.pipeline(transaction=True)
        pipe.delete(ids_key, meta_key)
        for start in range(0, len(spool.ids), SCRATCH_CHUNK):
            pipe.rpush(ids_key, *spool.ids[start : start + SCRATCH_CHUNK])
        pipe.hset(meta_key, mapping={"mode": "inline" if spool.inline else "file", "count": spool.count})
        pipe.expire(ids_key, scratch.ttl)
        pipe.expire(meta_key, scratch.ttl)
        pipe.execute()

    def _positions(self, job_id: str, part: int) -> list[str] | None:
        """The custom_ids of an inline part in the order sent; None when they are gone (never guessed)."""
        key, redis = self.part_key(job_id, part, "ids"), self.context.scratch.redis
        ids: list[str] = []
        while chunk := cast(list[bytes], redis.lrange(key, len(ids), len(ids) + SCRATCH_CHUNK - 1)):
            ids += [i.decode() for i in chunk]
        return ids or None

    def _meta(self, job_id: str, part: int) -> dict[str, str]:
        raw = cast(dict[bytes, bytes], self.context.scratch.redis.hgetall(self.part_key(job_id, part)))
        return {k.decode(): v.decode() for k, v in raw.items()}

    # -- batches ----------------------------------------------------------------------------------------------------
    def create(
        self, job_id: str, part: int, requests: Iterable[tuple[str, bytes]], count: int, group: str = ""
    ) -> Snapshot:
        credentials()  # a missing key is refused before anything is read, written or sent
        name = wire.display_name(job_id, part)
        model = wire.model_path(self.model_name)
        # Embedding inputs go to their own method; the batch, its input and its results have the same shapes.
        embed = group == wire.EMBED_GROUP
        create = self.api.create_embed_batch if embed else self.api.create_batch
        inline_limit = min(self.inline_limit, wire.EMBED_INLINE_LIMIT) if embed else self.inline_limit
        with PartInput.read(name, inline_limit, requests) as spool:
            self._remember(job_id, part, spool)
            if spool.inline:
                operation = create(model, spool.inline_body())
            else:
                assert spool.file is not None
                file_name = self.api.upload(spool.file, spool.file_size, name)
                self.context.scratch.redis.hset(self.part_key(job_id, part), "input_file", file_name)
                try:
                    operation = create(model, wire.file_batch(name, file_name))
                except ProviderRejected:
                    self._delete_file(file_name)  # refused: no batch will ever read it
                    raise
        log.info("gemini: created %s for job %s part %d (%s)", operation.get("name"), job_id, part, _mode(spool))
        return wire.snapshot_of(operation, spool.count)

    def status(self, batch_id: str) -> Snapshot:
        return self._snapshot(self.api.get_batch(wire.batch_name(batch_id)))

    def _snapshot(self, operation: dict[str, Any]) -> Snapshot:
        snapshot = wire.snapshot_of(operation)
        owner = wire.parse_display_name(snapshot.details.get("display_name"))
        if not snapshot.total and owner is not None and self._context is not None:
            count = int(self._meta(*owner).get("count") or 0)  # before Gemini counts, the count batchline sent
            snapshot = dataclasses.replace(snapshot, total=count)
        return snapshot

    def cancel(self, batch_id: str) -> Snapshot:
        snapshot = self.status(batch_id)
        if snapshot.ended:
            return snapshot
        try:
            self.api.cancel_batch(wire.batch_name(batch_id))
        except ProviderRejected:
            snapshot = self.status(batch_id)
            if snapshot.ended:  # it ended between the two calls: nothing left to cancel
                return snapshot
            raise
        return self.status(batch_id)

    def find(self, job_id: str, part: int) -> Snapshot | None:
        wanted = wire.display_name(job_id, part)
        for operation in self.api.batches():
            if as_dict(operation.get("metadata")).get("displayName") == wanted:
                return self._snapshot(operation)
        return None

    def read_results(self, batch: Snapshot) -> Iterator[ReadResult]:
        operation = self.api.get_batch(wire.batch_name(batch.id))
        file_name = wire.responses_file(operation)
        if file_name is not None:
            for line in self.api.file_lines(file_name):
                yield wire.result_line(line)
            return
        items = wire.inline_responses(operation)
        if items is None:
            return  # failed, or expired or cancelled before any result: the pipeline gives each its outcome
        owner = wire.parse_display_name(as_dict(operation.get("metadata")).get("displayName"))
        if owner is None:  # not batchline's: its requests are known only by position
            yield from wire.inline_results(items, None, by_index=True)
            return
        ids = self._positions(*owner)
        if ids is None:
            log.error("gemini: the request order of %s is gone; only responses that echo their key are kept", batch.id)
        yield from wire.inline_results(items, ids)

    def cleanup(self, batch: Snapshot) -> None:
        owner = wire.parse_display_name(batch.details.get("display_name"))
        meta = self._meta(*owner) if owner is not None else {}
        if self.context.settings.cleanup_files:
            for file_name in (meta.get("input_file"), batch.details.get("responses_file")):
                if file_name:
                    self._delete_file(file_name)
        if owner is not None:  # the results are stored: the order they were matched by is needed no more
            self.context.scratch.redis.delete(self.part_key(*owner), self.part_key(*owner, "ids"))

    def _delete_file(self, file_name: str) -> None:
        try:
            self.api.delete_file(file_name)
        except (ProviderRejected, TransientProviderError) as error:
            log.warning("gemini: could not delete %s (it expires on its own in 48 h): %s", file_name, for_log(error))


def _mode(spool: PartInput) -> str:
    return f"inline, {spool.count} requests" if spool.inline else f"file of {spool.file_size} bytes"

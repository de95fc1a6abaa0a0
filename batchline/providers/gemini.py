"""Google Gemini (`google:<model>`): the Gemini API's batch mode, through its REST API.

Encoding and decoding are pydantic-ai's (`GoogleModel.batch_encode` / `batch_decode`), in gemini_codec.py, which a
worker, moving bytes only, never imports; this adapter owns the transport.
A part goes inline while its `batchGenerateContent` body stays under the 20 MB inline limit, else as a JSONL file
through the Files API's resumable upload (up to 2 GB).

The link between a request and its result: file results carry the `key` each line was sent with (the custom_id).
Inline responses carry no key, so their order is the only link: the custom_ids in the order sent are written to
Redis, under the store's prefix and TTL, before the batch is created, and results are matched by position against
them. The batch's display name, `batchline:<job>:<part>`, leads from the batch to that list, and lets a batch whose
id was lost be found again by listing.

A file uploaded for a create that then failed is deleted when Gemini refused the batch; after a lost answer it is
kept (the batch may exist and read it), and a file left by a worker that died between upload and create expires on
its own after 48 hours.

Limits: Gemini documents no request count per batch; `max_requests` is 100,000 (as Anthropic's), which keeps a part's
result file and its fetch to minutes and a failure to one part. Bytes: 2 GB, the input-file limit.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

from ..errors import ProviderRejected, TransientProviderError
from ..store import CHUNK
from . import gemini_wire as wire
from .base import Encoded, Provider, ProviderContext, Snapshot, as_dict
from .gemini_api import GeminiAPI, credentials
from .gemini_input import PartInput

if TYPE_CHECKING:  # the codec side (gemini_codec) imports them; a worker moving bytes never does
    from pydantic_ai.messages import ModelResponse
    from pydantic_ai.models.batch import BatchRequest

    from ..records import StoredResult

log = logging.getLogger("batchline.gemini")

INLINE_LIMIT = 20_000_000
"""The Gemini API's limit on an inline batch's request body."""


class GeminiProvider(Provider):
    name = "gemini"
    max_requests = 100_000
    max_bytes = 2_000_000_000
    can_find = True
    inline_limit: ClassVar[int] = INLINE_LIMIT
    """Parts whose inline body would reach this many bytes go as a file instead."""

    def __init__(self, model_name: str, context: ProviderContext | None = None) -> None:
        super().__init__(model_name.removeprefix("models/"), context)
        self.api = GeminiAPI(trusted=context.settings.trusted_result_hosts if context is not None else ())

    # -- codec ------------------------------------------------------------------------------------------------------
    def encode(self, request: BatchRequest) -> Encoded:
        return self.encode_many([request])[0]

    def encode_many(self, requests: Sequence[BatchRequest]) -> list[Encoded]:
        from .gemini_codec import encode_many  # pydantic-ai and google-genai load only where requests are encoded

        return encode_many(self.model_name, requests)

    def decode(self, result: StoredResult, request: BatchRequest) -> ModelResponse:
        from .gemini_codec import decode

        return decode(self.model_name, result, request)

    def request_size(self, request: Encoded) -> int:
        return wire.inline_item_size(request.custom_id, request.body) + 1

    def is_transient(self, status: str, body: bytes) -> bool:
        return super().is_transient(status, body) or (status == "errored" and wire.is_transient(body))

    # -- the durable link between a part and its batch --------------------------------------------------------------
    def _key(self, job_id: str, part: int, suffix: str = "") -> str:
        return f"{self.context.prefix}gemini:{job_id}:{part}{suffix}"

    def _remember(self, job_id: str, part: int, spool: PartInput) -> None:
        """Write the part's mode, count and (inline) custom_ids in order, atomically, before the batch exists."""
        ctx = self.context
        ids_key, meta_key = self._key(job_id, part, ":ids"), self._key(job_id, part)
        pipe = ctx.redis.pipeline(transaction=True)
        pipe.delete(ids_key, meta_key)
        for start in range(0, len(spool.ids), CHUNK):
            pipe.rpush(ids_key, *spool.ids[start : start + CHUNK])
        pipe.hset(meta_key, mapping={"mode": "inline" if spool.inline else "file", "count": spool.count})
        pipe.expire(ids_key, ctx.settings.ttl_seconds)
        pipe.expire(meta_key, ctx.settings.ttl_seconds)
        pipe.execute()

    def _positions(self, job_id: str, part: int) -> list[str] | None:
        """The custom_ids of an inline part in the order sent; None when they are gone (never guessed)."""
        key = self._key(job_id, part, ":ids")
        ids: list[str] = []
        while chunk := cast(list[bytes], self.context.redis.lrange(key, len(ids), len(ids) + CHUNK - 1)):
            ids += [i.decode() for i in chunk]
        return ids or None

    def _meta(self, job_id: str, part: int) -> dict[str, str]:
        raw = cast(dict[bytes, bytes], self.context.redis.hgetall(self._key(job_id, part)))
        return {k.decode(): v.decode() for k, v in raw.items()}

    # -- transport --------------------------------------------------------------------------------------------------
    def create(
        self, job_id: str, part: int, requests: Iterable[tuple[str, bytes]], count: int, group: str = ""
    ) -> Snapshot:
        credentials()  # a missing key is refused before anything is read, written or sent
        name = wire.display_name(job_id, part)
        model = wire.model_path(self.model_name)
        with PartInput.read(name, self.inline_limit, requests) as spool:
            self._remember(job_id, part, spool)
            if spool.inline:
                operation = self.api.create_batch(model, spool.inline_body())
            else:
                assert spool.file is not None
                file_name = self.api.upload(spool.file, spool.file_size, name)
                self.context.redis.hset(self._key(job_id, part), "input_file", file_name)
                try:
                    operation = self.api.create_batch(model, wire.file_batch(name, file_name))
                except ProviderRejected:
                    self._delete_file(file_name)  # refused: no batch will ever read it
                    raise
        log.info("gemini: created %s for job %s part %d (%s)", operation.get("name"), job_id, part, _mode(spool))
        return wire.snapshot_of(operation, spool.count)

    def status(self, batch_id: str) -> Snapshot:
        return self._snapshot(self.api.get_batch(_batch_name(batch_id)))

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
            self.api.cancel_batch(_batch_name(batch_id))
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

    def results(self, batch: Snapshot) -> Iterator[tuple[str, str, bytes]]:
        operation = self.api.get_batch(_batch_name(batch.id))
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
            self.context.redis.delete(self._key(*owner), self._key(*owner, ":ids"))

    def _delete_file(self, file_name: str) -> None:
        try:
            self.api.delete_file(file_name)
        except (ProviderRejected, TransientProviderError) as error:
            log.warning("gemini: could not delete %s (it expires on its own in 48 h): %s", file_name, error)


def _batch_name(batch_id: str) -> str:
    return batch_id if batch_id.startswith("batches/") else f"batches/{batch_id}"


def _mode(spool: PartInput) -> str:
    return f"inline, {spool.count} requests" if spool.inline else f"file of {spool.file_size} bytes"

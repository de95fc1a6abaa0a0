"""The built-in `test` provider: deterministic answers, no network, state in the store.

It answers "Mock response for <custom_id>", or with tool calls when tools are given and text output is not allowed
(pydantic-ai's `TestModel` makes the calls and their arguments). A batch finishes `test_delay` seconds after it is
created. Its batches live in its scratch in the store (`{prefix}test:batch:{id}`, its requests under `...:in`, and
`{prefix}test:index`, `{prefix}test:creates`, `{prefix}test:runs:{job}`), so a batch created by one worker process
is polled and read by another.

Markers in a prompt exercise error paths: `[test:error]` fails the request with an `invalid_request_error`, and
`[test:flaky]` fails it with a `rate_limit_exceeded` the first time it runs and answers it the next. The
`test_create_seconds` and `test_result_seconds` settings make creates and downloads slow, to kill workers midway.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, cast

import orjson
from pydantic import TypeAdapter
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelRequest, ModelResponse, UserPromptPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.batch import BatchRequest
from pydantic_ai.models.test import TestModel

from ..errors import ProviderRejected
from ..records import ReadResult, StoredResult
from .base import SCRATCH_CHUNK, Encoded, Provider, Snapshot

_RESPONSE = TypeAdapter(ModelResponse)
_PARAMS = TypeAdapter(ModelRequestParameters)
ERROR_MARKER = "[test:error]"
FLAKY_MARKER = "[test:flaky]"


class TestProvider(Provider):
    __test__ = False  # not a pytest class
    name = "test"
    max_requests = 10_000
    max_bytes = 50_000_000
    can_find = True

    # -- codec ------------------------------------------------------------------------------------------------------
    def encode(self, request: BatchRequest) -> Encoded:
        body = b"".join(
            (
                b'{"messages":',
                ModelMessagesTypeAdapter.dump_json(request.messages),
                b',"params":',
                _PARAMS.dump_json(request.model_request_parameters),
                b',"settings":',
                orjson.dumps(dict(request.model_settings or {})),
                b"}",
            )
        )
        return Encoded(request.custom_id, body, group=self.model_name)

    def cache_body(self, body: bytes) -> bytes:
        """Its messages without their timestamps: the same prompt written a second later is the same request."""
        request = orjson.loads(body)
        for message in request["messages"]:
            message.pop("timestamp", None)
            for part in message.get("parts", ()):
                part.pop("timestamp", None)
        return orjson.dumps(request, option=orjson.OPT_SORT_KEYS)

    def decode(self, result: StoredResult, request: BatchRequest) -> ModelResponse:
        if result.status == "succeeded":
            return _RESPONSE.validate_json(result.body)
        error = orjson.loads(result.body) if result.body else {"code": result.status, "message": result.status}
        raise ModelHTTPError(status_code=400, model_name=self.model_name, body={"error": error})

    # -- transport --------------------------------------------------------------------------------------------------
    def _key(self, batch_id: str, *suffix: str) -> str:
        return self.context.scratch.key("batch", batch_id, *suffix)

    def create(
        self, job_id: str, part: int, requests: Iterable[tuple[str, bytes]], count: int, group: str = ""
    ) -> Snapshot:
        ctx, scratch = self.context, self.context.scratch
        batch_id = f"batch_test_{uuid.uuid4().hex[:24]}"
        pipe = scratch.redis.pipeline(transaction=True)
        chunk: list[bytes | str] = []
        for custom_id, body in requests:
            chunk += [custom_id, body]
            if len(chunk) >= 2 * SCRATCH_CHUNK:
                pipe.rpush(self._key(batch_id, "in"), *chunk)
                chunk = []
        if chunk:
            pipe.rpush(self._key(batch_id, "in"), *chunk)
        pipe.hset(
            self._key(batch_id),
            mapping={"created_at": time.time(), "delay": ctx.settings.test_delay, "total": count, "job": job_id},
        )
        pipe.hset(scratch.key("index"), f"{job_id}:{part}", batch_id)
        pipe.hincrby(scratch.key("creates"), f"{job_id}:{part}", 1)  # what a test checks: created once
        for key in (self._key(batch_id), self._key(batch_id, "in")):
            pipe.expire(key, scratch.ttl)
        pipe.execute()
        # The batch exists from here on; a slow answer opens the window where a worker can die before recording it.
        time.sleep(ctx.settings.test_create_seconds)
        return self.status(batch_id)

    def status(self, batch_id: str) -> Snapshot:
        raw = cast(dict[bytes, bytes], self.context.scratch.redis.hgetall(self._key(batch_id)))
        if not raw:
            raise ProviderRejected(f"test: no batch {batch_id!r}", 404)
        info = {k.decode(): v.decode() for k, v in raw.items()}
        total = int(info["total"])
        if "cancelled_at" in info:
            return Snapshot(batch_id, "cancelled", "cancelled", total=total)
        if time.time() < float(info["created_at"]) + float(info["delay"]):
            return Snapshot(batch_id, "in_progress", "running", total=total)
        return Snapshot(batch_id, "ended", "completed", total=total, completed=total)

    def cancel(self, batch_id: str) -> Snapshot:
        snapshot = self.status(batch_id)
        if not snapshot.ended:
            self.context.scratch.redis.hsetnx(self._key(batch_id), "cancelled_at", time.time())
        return self.status(batch_id)

    def find(self, job_id: str, part: int) -> Snapshot | None:
        scratch = self.context.scratch
        batch_id = cast(bytes | None, scratch.redis.hget(scratch.key("index"), f"{job_id}:{part}"))
        return None if batch_id is None else self.status(batch_id.decode())

    def read_results(self, batch: Snapshot) -> Iterator[ReadResult]:
        if batch.state != "completed":
            return  # a cancelled test batch ran nothing
        loop = asyncio.new_event_loop()
        try:
            start = 0
            while True:
                raw = cast(
                    list[bytes],
                    self.context.scratch.redis.lrange(self._key(batch.id, "in"), start, start + 2 * SCRATCH_CHUNK - 1),
                )
                for i in range(0, len(raw), 2):
                    custom_id = raw[i].decode()
                    time.sleep(self.context.settings.test_result_seconds)  # a slow download, when asked for
                    yield (custom_id, *self._answer(loop, batch.id, custom_id, orjson.loads(raw[i + 1])), None)
                if len(raw) < 2 * SCRATCH_CHUNK:
                    return
                start += 2 * SCRATCH_CHUNK
        finally:
            loop.close()

    def _answer(
        self, loop: asyncio.AbstractEventLoop, batch_id: str, custom_id: str, request: dict[str, Any]
    ) -> tuple[str, bytes]:
        messages: list[ModelMessage] = ModelMessagesTypeAdapter.validate_python(request["messages"])
        prompts = " ".join(_user_prompts(messages))
        if ERROR_MARKER in prompts:
            error = {"code": "invalid_request_error", "message": "Rejected on request by the test provider."}
            return "errored", orjson.dumps(error)
        if FLAKY_MARKER in prompts and self._first_run(batch_id, custom_id):
            error = {"code": "rate_limit_exceeded", "message": "Rate limited by the test provider; try again."}
            return "errored", orjson.dumps(error)
        params = _PARAMS.validate_python(request["params"])
        model = TestModel(
            call_tools="all" if not params.allow_text_output else [],
            custom_output_text=f"Mock response for {custom_id}",
            model_name=self.model_name,
        )
        response = loop.run_until_complete(model.request(messages, request["settings"] or None, params))
        return "succeeded", _RESPONSE.dump_json(response)

    def _first_run(self, batch_id: str, custom_id: str) -> bool:
        """Whether this request runs for the first time in its job (a result read twice counts once per batch)."""
        scratch = self.context.scratch
        redis = scratch.redis
        job = cast(bytes, redis.hget(self._key(batch_id), "job")).decode()
        runs = scratch.key("runs", job)
        first = bool(redis.hsetnx(runs, custom_id, batch_id))
        redis.expire(runs, scratch.ttl)
        return first or cast(bytes, redis.hget(runs, custom_id)).decode() == batch_id


def _user_prompts(messages: list[ModelMessage]) -> Iterator[str]:
    for message in messages:
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                    yield part.content

"""The Redis keys the adapters keep their own state under: named exactly as before the store handed out scratches.

A job in flight across an upgrade must still find what an older worker wrote (Anthropic's id map, Gemini's request
order, the test provider's batches), so these names are a stored format: a change here is a migration.
"""

from __future__ import annotations

import fakeredis
import orjson

from batchline.config import Settings
from batchline.providers import ProviderContext, get_provider, provider_class
from batchline.providers.anthropic import AnthropicProvider
from batchline.providers.gemini import GeminiProvider
from batchline.providers.gemini.spool import PartInput
from batchline.providers.test import TestProvider
from batchline.runtime import Runtime
from batchline.store import Store

PREFIX = "sk:"
TTL = 600


def _context(owner: str, redis: fakeredis.FakeRedis) -> ProviderContext:
    return ProviderContext(Settings(), Store(redis, PREFIX, TTL).scratch(owner))


def test_the_runtime_gives_each_adapter_the_scratch_named_for_it() -> None:
    runtime = Runtime(Settings(), Store(fakeredis.FakeRedis(), PREFIX, TTL))
    for model, owner in [
        ("openai:gpt-4o-mini", "openai"),
        ("anthropic:claude-sonnet-4-5", "anthropic"),
        ("google:gemini-2.5-flash", "gemini"),
        ("test", "test"),
    ]:
        scratch = runtime.provider(model).context.scratch
        assert provider_class(model).name == owner
        assert (scratch.prefix, scratch.ttl) == (f"{PREFIX}{owner}:", TTL)


def test_anthropic_keeps_its_id_map_under_prefix_anthropic_ids_batch() -> None:
    redis = fakeredis.FakeRedis()
    adapter = AnthropicProvider("claude-sonnet-4-5", _context("anthropic", redis))
    adapter._save_ids("msgbatch_01", {"bl_abc": "a/b"})
    assert redis.keys("*") == [b"sk:anthropic:ids:msgbatch_01"]
    assert redis.hgetall("sk:anthropic:ids:msgbatch_01") == {b"bl_abc": b"a/b"}
    assert 0 < redis.ttl("sk:anthropic:ids:msgbatch_01") <= TTL
    adapter.cleanup(adapter.to_snapshot({"id": "msgbatch_01", "processing_status": "ended"}))
    assert redis.keys("*") == []


def test_gemini_keeps_a_parts_mode_and_order_under_prefix_gemini_job_part() -> None:
    redis = fakeredis.FakeRedis()
    adapter = GeminiProvider("gemini-2.5-flash", _context("gemini", redis))
    with PartInput.read("batchline:job-1:3", 1_000_000, [("z", b"{}"), ("a", b"{}")]) as spool:
        adapter._remember("job-1", 3, spool)
    assert sorted(redis.keys("*")) == [b"sk:gemini:job-1:3", b"sk:gemini:job-1:3:ids"]
    assert redis.hgetall("sk:gemini:job-1:3") == {b"mode": b"inline", b"count": b"2"}
    assert redis.lrange("sk:gemini:job-1:3:ids", 0, -1) == [b"z", b"a"]
    assert all(0 < redis.ttl(key) <= TTL for key in redis.keys("*"))
    assert adapter._positions("job-1", 3) == ["z", "a"]


def test_the_test_provider_keeps_its_batches_under_prefix_test() -> None:
    redis = fakeredis.FakeRedis()
    adapter = get_provider("test", _context("test", redis))
    assert isinstance(adapter, TestProvider)
    snapshot = adapter.create("job-1", 0, [("a", orjson.dumps({"messages": []}))], 1)
    assert adapter._first_run(snapshot.id, "a")
    assert sorted(redis.keys("*")) == sorted(
        [
            f"sk:test:batch:{snapshot.id}".encode(),
            f"sk:test:batch:{snapshot.id}:in".encode(),
            b"sk:test:index",
            b"sk:test:creates",
            b"sk:test:runs:job-1",
        ]
    )
    assert redis.hget("sk:test:index", "job-1:0") == snapshot.id.encode()
    assert redis.hget("sk:test:creates", "job-1:0") == b"1"
    assert adapter.find("job-1", 0) == snapshot

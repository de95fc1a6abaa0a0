"""Stored result bodies are compressed: every body reads back byte for byte, values stored by an older batchline
still read, token usage is still counted at ingest, and the recorded real answers take less Redis memory."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import orjson
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from batchline.compact import MARK, SMALLEST, pack, pack_many, unpack
from batchline.costs import usage_reader
from batchline.records import RESULT_TAGS, JobRecord
from batchline.store import Store

ROOT = Path(__file__).resolve().parent.parent
STATUSES = st.sampled_from(sorted(RESULT_TAGS))
RECORDED = ROOT / "tests" / "fixtures" / "recorded"


def json_bodies() -> st.SearchStrategy[bytes]:
    """JSON texts like providers' answers: nested objects of text, numbers and nulls."""
    leaves = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=300)
    values = st.recursive(
        leaves, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    )
    return st.dictionaries(st.text(max_size=12), values, max_size=8).map(orjson.dumps)


@given(STATUSES, st.binary(max_size=4000) | json_bodies())
@settings(max_examples=400, deadline=None)
def test_any_body_reads_back_byte_for_byte(status: str, body: bytes) -> None:
    stored = unpack("c", pack(status, body))
    assert (stored.custom_id, stored.status, stored.body) == ("c", status, body)


@given(STATUSES, st.binary(max_size=200).map(lambda tail: MARK + tail))
def test_a_body_that_begins_with_the_mark_reads_back(status: str, body: bytes) -> None:
    assert unpack("c", pack(status, body)).body == body


@given(st.lists(st.tuples(STATUSES, st.binary(max_size=2 * SMALLEST) | json_bodies()), max_size=12))
@settings(max_examples=200, deadline=None)
def test_a_chunk_packed_at_once_reads_back_in_order(rows: list[tuple[str, bytes]]) -> None:
    """Short bodies (kept as they came) among compressed ones: each value still belongs to its own result."""
    values = pack_many(rows)
    assert [(r.status, r.body) for r in (unpack("c", value) for value in values)] == rows


def test_a_json_answer_is_stored_smaller_with_its_status_letter_first() -> None:
    body = (RECORDED / "openai" / "batch_output.jsonl").read_bytes().splitlines()[0]
    value = pack("succeeded", body)
    assert value[:2] == b"s" + MARK  # the Lua scripts read the status from the first letter
    assert len(value) < len(body) / 2


@pytest.fixture
def store() -> Store:
    return Store(fakeredis.FakeRedis(), prefix="t:", ttl_seconds=3600)


def test_results_stored_by_an_older_batchline_still_read(store: Store) -> None:
    """Before compression a value was the status letter and the body as received."""
    old = {"a": b's{"id":"resp_1","output":[]}', "b": b'e{"status_code":500}', "c": b"x"}
    store.redis.hset(store.job_key("j", ":res"), mapping=old)  # type: ignore[arg-type]
    store.add_results("j", [("d", "succeeded", b'{"id":"resp_2","output":[], "usage": null}' * 4)])
    got = store.results("j", ["a", "b", "c", "d", "e"])
    assert [(r.status, r.body) if r else None for r in got] == [
        ("succeeded", b'{"id":"resp_1","output":[]}'),
        ("errored", b'{"status_code":500}'),
        ("expired", b""),
        ("succeeded", b'{"id":"resp_2","output":[], "usage": null}' * 4),
        None,
    ]


def openai_lines() -> list[tuple[str, str, bytes]]:
    from batchline.providers.openai.wire import result_of

    lines = (RECORDED / "openai" / "batch_output.jsonl").read_bytes().splitlines()
    return [result_of(orjson.loads(line)) for line in lines]


@pytest.fixture
def real_store(redis_url: str) -> Iterator[Store]:
    prefix = f"bltest-{uuid.uuid4().hex[:10]}:"
    client = redis.Redis.from_url(redis_url)
    yield Store(client, prefix=prefix, ttl_seconds=600)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)


def test_usage_is_counted_at_ingest_from_the_bodies_before_compression(real_store: Store) -> None:
    results = openai_lines()
    real_store.create_job("j", JobRecord(model="openai:gpt-3.5-turbo", total=3, created_at=1.0), [], [])
    assert real_store.add_results("j", results, usage=usage_reader("openai")) == 3
    job = real_store.load_job("j")
    # batch_output.jsonl's usage: prompt 10 + 9 + 9, completion 72 + 97 + 95 (as recorded)
    expected = [usage_reader("openai")(body) for _, _, body in results]  # type: ignore[misc]
    assert (job.input_tokens, job.output_tokens) == tuple(map(sum, zip(*expected, strict=True)))
    assert job.input_tokens > 0 and job.succeeded == 3
    assert [r.body if r else None for r in real_store.results("j", ["0", "1", "2"])] == [b for _, _, b in results]


def test_the_recorded_answers_take_less_redis_memory(redis_url: str) -> None:
    """Redis's own MEMORY USAGE of a results hash, per result, against the body's bytes (bench/compact.py)."""
    sys.path.insert(0, str(ROOT))
    from bench.compact import measure

    report = measure(copies=300, url=redis_url)
    openai_chat = [r for r in report["shapes"] if r["shape"].startswith('{"id":"chatcmpl')]
    assert openai_chat and all(r["ratio"] <= 0.45 for r in openai_chat), openai_chat
    assert report["all_ratio"] <= 0.40, report
    assert all(r["ratio"] < 0.6 * r["uncompressed_ratio"] for r in report["shapes"]), report["shapes"]


def test_the_shipped_dictionary_is_what_the_script_builds() -> None:
    script = ROOT / "scripts" / "build_result_dictionary.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


@given(st.lists(st.tuples(STATUSES, st.binary(max_size=3000) | json_bodies()), min_size=1, max_size=8))
@settings(max_examples=60, deadline=None)
def test_bodies_read_back_through_the_store_scripts(redis_url: str, rows: list[tuple[str, bytes]]) -> None:
    """Through the Lua script that stores them, on a real Redis and on the embedded store's (fakeredis with Lua)."""
    prefix = f"bltest-{uuid.uuid4().hex[:10]}:"
    client = redis.Redis.from_url(redis_url)
    try:
        for store in (Store(client, prefix=prefix), Store(fakeredis.FakeRedis(), prefix=prefix)):
            results = [(f"r{i}", status, body) for i, (status, body) in enumerate(rows)]
            assert store.add_results("j", results) == len(rows)
            got = store.results("j", [cid for cid, _, _ in results])
            assert [(r.custom_id, r.status, r.body) if r else None for r in got] == results
    finally:
        client.delete(*(f"{prefix}job:j{suffix}" for suffix in ("", ":res", ":stream")))


def test_a_chunk_packed_by_zstandards_cffi_backend_reads_back_here() -> None:
    """zstandard's CFFI backend (PyPy's, or `PYTHON_ZSTANDARD_IMPORT_POLICY=cffi`) has no `multi_compress_to_buffer`:
    every fetch failed on it. It now compresses one body at a time, and what it stores reads back on the C backend."""
    bodies = [b'{"text": "' + b"an answer " * n + b'"}' for n in range(40)] + [b"{}", MARK + b"raw"]
    script = (
        "import sys, orjson, zstandard; from batchline.compact import pack_many, unpack; "
        "bodies = orjson.loads(sys.stdin.buffer.read()); "
        "values = pack_many([('succeeded', bytes.fromhex(b)) for b in bodies]); "
        "assert [unpack('x', v).body.hex() for v in values] == bodies; "
        "print(orjson.dumps({'backend': zstandard.backend, 'values': [v.hex() for v in values]}).decode())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=orjson.dumps([body.hex() for body in bodies]),
        capture_output=True,
        env={**os.environ, "PYTHON_ZSTANDARD_IMPORT_POLICY": "cffi"},
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    report = orjson.loads(done.stdout)
    assert report["backend"] == "cffi"
    values = [bytes.fromhex(v) for v in report["values"]]
    assert sum(len(v) for v in values) < sum(len(b) for b in bodies) / 2  # compressed, not kept as they came
    assert [unpack(f"r{i}", v).body for i, v in enumerate(values)] == bodies

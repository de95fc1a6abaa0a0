"""The typed job and part records read hashes exactly as batchline has always written them."""

from __future__ import annotations

import fakeredis
import pytest

from batchline.errors import JobNotFound
from batchline.records import JobRecord, PartRecord, PartState
from batchline.store import Store
from batchline.types import BatchStatus

# A job's and a part's hashes as batchline wrote them before the records were typed (field names and encodings).
OLD_JOB = {
    "model": "openai:gpt-4o-mini",
    "total": "3",
    "created_at": "1733000000.25",
    "poll_interval": "60.0",
    "deadline": "0",
    "chunk_size": "500",
    "max_resubmissions": "2",
    "params": '{"function_tools":[]}',
    "settings": "{}",
    "callback": "app.save",
    "raw": "1",
    "state": "completed",
    "parts": "2",
    "succeeded": "2",
    "failed": "1",
    "anomalies": "4",
    "completed_at": "1733000100.5",
}
OLD_PART = {
    "state": "stored",
    "total": "2",
    "group": "gpt-4o-mini",
    "claim": "abc:1733000000.5",
    "provider_id": "batch_x",
    "provider_status": "completed",
    "provider_state": "completed",
    "completed": "2",
    "failed": "0",
    "error": "",
    "details": '{"output_file_id":"f"}',
    "polls": "3",
    "poll_poisoned": "0",
    "resubmitted_as": "1",
    "anomalies": "0",
}


@pytest.fixture
def store() -> Store:
    return Store(fakeredis.FakeRedis(), prefix="t:", ttl_seconds=3600)


def test_a_job_and_part_written_in_the_old_format_read_as_typed_records(store: Store) -> None:
    store.redis.hset(store.job_key("j"), mapping=OLD_JOB)  # type: ignore[arg-type]
    store.redis.hset(store.part_key("j", 0), mapping=OLD_PART)  # type: ignore[arg-type]
    job = store.load_job("j")
    assert job == JobRecord(
        model="openai:gpt-4o-mini",
        total=3,
        created_at=1733000000.25,
        poll_interval=60.0,
        deadline=0.0,
        chunk_size=500,
        max_resubmissions=2,
        params='{"function_tools":[]}',
        settings="{}",
        callback="app.save",
        on_complete=None,
        raw=True,
        state=BatchStatus.COMPLETED,
        parts=2,
        succeeded=2,
        failed=1,
        anomalies=4,
        completed_at=1733000100.5,
    )
    part = store.part("j", 0)
    assert part.state is PartState.STORED and part.ended
    assert (part.total, part.group, part.claim, part.provider_id) == (2, "gpt-4o-mini", "abc:1733000000.5", "batch_x")
    assert (part.completed, part.failed, part.polls, part.poll_poisoned, part.fetch_poisoned) == (2, 0, 3, 0, None)
    assert (part.resubmitted_as, part.resubmit_of, part.details) == (1, None, '{"output_file_id":"f"}')


def test_a_new_job_is_written_in_the_old_format(store: Store) -> None:
    record = JobRecord(model="test", total=2, created_at=1.5, poll_interval=1.0, chunk_size=3, max_resubmissions=0)
    store.create_job("j", record, [("a", b"{}", None), ("b", b"{}", None)], [("g", ["a", "b"])])
    fields = {k.decode(): v.decode() for k, v in store.redis.hgetall(store.job_key("j")).items()}  # type: ignore[union-attr]
    assert fields == {
        "model": "test",
        "total": "2",
        "created_at": "1.5",
        "poll_interval": "1.0",
        "deadline": "0",
        "chunk_size": "3",
        "max_resubmissions": "0",
        "params": "{}",
        "settings": "{}",
        "state": "pending",
        "parts": "1",
        "succeeded": "0",
        "failed": "0",
    }
    part = {k.decode(): v.decode() for k, v in store.redis.hgetall(store.part_key("j", 0)).items()}  # type: ignore[union-attr]
    assert part == {"state": "pending", "total": "2", "group": "g"}


def test_records_round_trip_through_their_hashes() -> None:
    job = JobRecord.from_hash(OLD_JOB)
    assert JobRecord.from_hash({k: str(v) for k, v in job.to_hash().items()}) == job
    part = PartRecord.from_hash(OLD_PART)
    assert PartRecord.from_hash({k: str(v) for k, v in part.to_hash().items()}) == part


def test_absent_fields_read_as_their_defaults(store: Store) -> None:
    assert store.job("nope") is None
    with pytest.raises(JobNotFound, match="nope"):
        store.load_job("nope")
    assert store.part("nope", 0) == PartRecord()
    job = JobRecord.from_hash({"model": "test", "total": "1", "created_at": "1.0"})
    assert (job.state, job.parts, job.poll_interval, job.chunk_size, job.max_resubmissions) == (
        BatchStatus.PENDING,
        0,
        60.0,
        500,
        0,
    )
    assert (job.callback, job.on_complete, job.raw, job.completed_at, job.delivery_error) == (
        None,
        None,
        False,
        None,
        None,
    )


def test_the_store_records_a_delivery_refusal_and_a_poll_time(store: Store) -> None:
    store.create_job("j", JobRecord(model="test", total=1, created_at=1.0), [("a", b"{}", None)], [("g", ["a"])])
    store.set_delivery_error("j", "not allowed")
    assert store.load_job("j").delivery_error == "not allowed"
    assert store.last_poll("j", 0) is None
    store.record_poll("j", 0, counted=False)
    assert (store.last_poll("j", 0) or 0) > 0
    store.delete_job("j", 1)
    assert store.job("j") is None and store.job_ids() == [] and store.redis.keys("t:job:j*") == []

"""The store on a Redis Cluster, Sentinel and TLS: URLs and settings, hash-tagged keys spread over the shards, the
steps split per slot staying crash-safe, the features that refuse a cluster, and a job through a real worker."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest
import redis
from pydantic_ai import ModelRequest
from redis.cluster import RedisCluster

from batchline import BatchStatus, batch_create_sync, batch_list_sync, batch_results_sync, batch_status_sync, worker
from batchline.agents.store import AgentStore
from batchline.cache import CacheStore
from batchline.config import Settings
from batchline.errors import SettingsError, UnsupportedOnCluster
from batchline.providers import ProviderContext
from batchline.providers.anthropic import AnthropicProvider
from batchline.providers.gemini import GeminiProvider
from batchline.providers.gemini.spool import PartInput
from batchline.providers.test import TestProvider
from batchline.records import JobRecord
from batchline.redis_urls import _split, is_cluster_url, store_client
from batchline.runtime import make_store, runtime_for
from batchline.store import Store
from batchline.store_cluster import ClusterStore
from batchline.types import BatchStatus as Status
from batchline.worker import default_result_backend

from .conftest import ROOT, WorkerProcess, make_real_setup
from .waiting import wait_for

TTL = 3 * 24 * 3600


@pytest.fixture
def cluster_store(redis_cluster_url: str) -> Iterator[ClusterStore]:
    prefix = f"tc-{uuid.uuid4().hex[:8]}:"
    store = ClusterStore(store_client(redis_cluster_url), prefix, TTL)
    yield store
    for key in list(store.redis.scan_iter(match=f"{prefix}*")):
        store.redis.delete(key)


def write_job(store: Store, job_id: str, created_at: float = 1.0) -> None:
    rows = [("a", b'{"q":1}', None), ("b", b'{"q":2}', None)]
    store.create_job(job_id, JobRecord(model="test", total=2, created_at=created_at), rows, [("g", ["a", "b"])])


# -- URLs and settings ------------------------------------------------------------------------------------------------
def test_cluster_and_sentinel_urls_give_their_nodes_credentials_and_tls_options() -> None:
    tls, hosts, options = _split("rediss+cluster://app:s3cret@10.0.0.1:7000,10.0.0.2:7001?ssl_cert_reqs=required")
    assert tls and hosts == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert (options["username"], options["password"], options["ssl_cert_reqs"]) == ("app", "s3cret", "required")
    assert options["connection_class"] is redis.SSLConnection
    tls, hosts, options = _split("redis+sentinel://:pw@s1:26379,s2:26380/mymaster/2?sentinel_password=sp")
    assert not tls and hosts == [("s1", 26379), ("s2", 26380)]
    assert (options["password"], options["sentinel_password"]) == ("pw", "sp")


def test_a_sentinel_url_names_the_master_by_service_with_its_database_and_tls() -> None:
    client = store_client("rediss+sentinel://:pw@127.0.0.1:1,127.0.0.1:2/mymaster/3?ssl_cert_reqs=none")
    pool = client.connection_pool
    assert pool.service_name == "mymaster"  # type: ignore[attr-defined]
    assert [s.connection_pool.connection_kwargs["port"] for s in pool.sentinel_manager.sentinels] == [1, 2]  # type: ignore[attr-defined]
    assert pool.connection_kwargs["db"] == 3 and pool.connection_kwargs["password"] == "pw"
    assert "SSL" in pool.connection_class.__name__  # the master's connections are TLS ones found through Sentinel
    with pytest.raises(SettingsError, match="service"):
        store_client("redis+sentinel://127.0.0.1:26379")


def test_a_rediss_url_is_one_redis_over_tls() -> None:
    client = store_client("rediss://:pw@cache.example.com:6380/0?ssl_ca_certs=/etc/ssl/ca.pem")
    kwargs = client.connection_pool.connection_kwargs
    assert client.connection_pool.connection_class is redis.SSLConnection
    assert (kwargs["host"], kwargs["port"], kwargs["ssl_ca_certs"]) == ("cache.example.com", 6380, "/etc/ssl/ca.pem")


def test_settings_take_cluster_sentinel_and_tls_store_urls_and_refuse_others() -> None:
    for url in ("redis+cluster://h:7000,h:7001", "rediss+cluster://h:7000", "redis+sentinel://h:26379/m", "rediss://h"):
        assert Settings.load({}, {"BATCHLINE_REDIS_URL": url}).store_url == url
    with pytest.raises(SettingsError, match="BATCHLINE_REDIS_URL must be a Redis URL") as refused:
        Settings.load({}, {"BATCHLINE_REDIS_URL": "http://user:hunter2@h"})
    assert "hunter2" not in str(refused.value)
    settings = Settings.load({}, {"BATCHLINE_REDIS_URL": "redis://h:7000", "BATCHLINE_REDIS_CLUSTER": "true"})
    assert settings.redis_cluster and is_cluster_url("redis://h:7000", settings.redis_cluster)
    for without in ({}, {"BATCHLINE_BROKER_URL": "redis://h:6379/0"}, {"BATCHLINE_REDIS_URL": "unix:///r.sock"}):
        with pytest.raises(SettingsError, match="BATCHLINE_REDIS_CLUSTER needs BATCHLINE_REDIS_URL"):
            Settings.load({}, {**without, "BATCHLINE_REDIS_CLUSTER": "1"})
    with pytest.raises(SettingsError, match="cannot name a database"):
        store_client("redis+cluster://127.0.0.1:1/2")


def test_task_results_stay_off_a_cluster_or_sentinel_store() -> None:
    broker = "redis://broker:6379/0"
    plain = Settings(broker_url=broker, redis_url="redis://store:6379/1")
    assert default_result_backend(plain) == "redis://store:6379/1"
    for store in ("redis+cluster://c:7000", "redis+sentinel://s:26379/m"):
        assert default_result_backend(Settings(broker_url=broker, redis_url=store)) == broker
        assert default_result_backend(Settings(broker_url="amqp://guest@rabbit//", redis_url=store)) is None
    assert default_result_backend(Settings(broker_url=broker, redis_url="redis://c:7000", redis_cluster=True)) == broker


# -- keys -------------------------------------------------------------------------------------------------------------
def test_one_redis_keeps_todays_key_names_and_a_cluster_tags_each_job() -> None:
    """Jobs in flight across an upgrade keep their keys: only a cluster store (new, never holding old jobs) tags."""
    plain = Store(fakeredis.FakeRedis(), "P:", TTL)
    assert (plain.job_key("J", ":res"), plain.part_key("J", 2, ":ids")) == ("P:job:J:res", "P:job:J:part:2:ids")
    assert plain.scratch("test").key("index") == "P:test:index"
    tagged = ClusterStore(fakeredis.FakeRedis(), "P:", TTL)
    assert (tagged.job_key("J", ":res"), tagged.part_key("J", 2, ":ids")) == ("P:job:{J}:res", "P:job:{J}:part:2:ids")
    assert tagged.scratch("test").key("index") == "P:{test}:index"
    assert tagged.pending_key() == plain.pending_key() == "P:pending"
    with pytest.raises(UnsupportedOnCluster, match="braces"):
        ClusterStore(fakeredis.FakeRedis(), "P{x}:", TTL)


def test_the_store_made_from_settings_is_a_cluster_store_only_on_a_cluster(redis_cluster_url: str) -> None:
    node = redis_cluster_url.replace("redis+cluster://", "redis://")
    assert isinstance(make_store(Settings(redis_url=redis_cluster_url)), ClusterStore)
    assert isinstance(make_store(Settings(redis_url=node, redis_cluster=True)), ClusterStore)
    assert type(make_store(Settings(redis_url="redis://127.0.0.1:6379/0"))) is Store


def test_a_jobs_keys_share_one_slot_and_jobs_spread_over_every_shard(cluster_store: ClusterStore) -> None:
    client = cluster_store.redis
    assert isinstance(client, RedisCluster)
    ids = [f"batch_{uuid.uuid4().hex}" for _ in range(30)]
    for job_id in ids:
        write_job(cluster_store, job_id)
        cluster_store.add_results(job_id, [("a", "succeeded", b"{}")])
    for job_id in ids[:3]:
        keys = list(client.scan_iter(match=f"{cluster_store.job_key(job_id)}*"))
        assert len(keys) >= 6 and len({client.keyslot(k) for k in keys}) == 1
    shards = {client.get_node_from_key(cluster_store.job_key(job_id)).name for job_id in ids}
    assert len(shards) == 3  # three masters, thirty jobs: each shard holds some
    # The listing and the sweep's sets are one key each; the listing reads every job from its own shard.
    listed = cluster_store.job_ids(100)
    assert sorted(listed) == sorted(ids)
    assert all(cluster_store.load_job(job_id).succeeded == 1 for job_id in listed)
    assert sorted(cluster_store.stale_pending(9e12, 100, 0)) == sorted(ids)


# -- crash-safety of the split steps ----------------------------------------------------------------------------------
class Crashed(Exception):
    pass


class Dead:
    """A job's transaction that never runs: the process died after the listing step."""

    def execute(self) -> None:
        raise Crashed


def test_a_crash_between_listing_a_job_and_writing_it_leaves_nothing_the_sweep_or_listing_trips_on(
    cluster_store: ClusterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = cluster_store._list_new_job

    def crash_after_listing(pipe: object, job_id: str, created_at: float) -> None:
        real(Dead(), job_id, created_at)

    monkeypatch.setattr(cluster_store, "_list_new_job", crash_after_listing)
    with pytest.raises(Crashed):
        write_job(cluster_store, "half")
    monkeypatch.undo()
    assert cluster_store.job_ids() == ["half"] and cluster_store.job("half") is None  # listed, never written
    assert cluster_store.stale_pending(9e12, 10, 0) == []  # nothing to re-send, and the entry is dropped
    assert cluster_store.redis.zscore(cluster_store.pending_key(), "half") is None


def test_a_crash_between_a_jobs_move_and_leaving_the_pending_set_is_repaired_by_the_sweep(
    cluster_store: ClusterStore,
) -> None:
    write_job(cluster_store, "moved")
    # The job's half of the step ran (its state moved on its shard); the process died before the ZREM.
    cluster_store._move([cluster_store.job_key("moved")], "moved", "in_progress", ("pending",), {})
    assert cluster_store.redis.zscore(cluster_store.pending_key(), "moved") is not None
    assert cluster_store.stale_pending(9e12, 10, 0) == []  # not re-sent: its job is no longer pending
    assert cluster_store.redis.zscore(cluster_store.pending_key(), "moved") is None
    # The whole step leaves the set at once.
    write_job(cluster_store, "whole")
    assert cluster_store.transition_job("whole", Status.IN_PROGRESS, Status.PENDING)
    assert cluster_store.redis.zscore(cluster_store.pending_key(), "whole") is None


def test_deleting_a_refused_job_unlists_it_and_removes_its_keys(cluster_store: ClusterStore) -> None:
    write_job(cluster_store, "refused")
    cluster_store.delete_job("refused", 1)
    assert cluster_store.job_ids() == [] and cluster_store.stale_pending(9e12, 10, 0) == []
    assert list(cluster_store.redis.scan_iter(match=f"{cluster_store.job_key('refused')}*")) == []


# -- what refuses a cluster -------------------------------------------------------------------------------------------
def test_the_cache_and_agents_refuse_a_cluster_store_before_writing(cluster_store: ClusterStore) -> None:
    with pytest.raises(UnsupportedOnCluster, match="response cache"):
        CacheStore(cluster_store)
    with pytest.raises(UnsupportedOnCluster, match=r"batchline\.agents"):
        AgentStore(cluster_store)


def test_a_cached_job_on_a_cluster_is_refused_at_create_with_nothing_stored(
    redis_url: str, redis_cluster_url: str
) -> None:
    setup = make_real_setup(redis_url, store_url=redis_cluster_url)
    worker.use_app(setup.app)
    try:
        with pytest.raises(UnsupportedOnCluster, match="not available on a Redis Cluster"):
            batch_create_sync("test", [("a", [ModelRequest.user_text_prompt("x")])], cache=True)
        assert runtime_for(setup.app).store.job_ids() == []
    finally:
        worker._current = None
        setup.cleanup()


# -- a real worker ----------------------------------------------------------------------------------------------------
def test_jobs_run_on_a_real_worker_with_the_store_on_a_cluster_and_are_listed_from_every_shard(
    redis_url: str, redis_cluster_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TestProvider, "max_requests", 10)  # planned in this process: three parts a job
    setup = make_real_setup(redis_url, store_url=redis_cluster_url, test_delay=1.0, max_poll_interval=1)
    process = WorkerProcess(setup.env, tmp_path / "worker.log")
    worker.use_app(setup.app)
    try:
        requests = [(f"doc-{i}", [ModelRequest.user_text_prompt(f"Summarise document {i}")]) for i in range(25)]
        made = [batch_create_sync("test", requests, poll_interval=0.3) for _ in range(6)]
        for batch in made:
            wait_for(lambda b=batch: batch_status_sync(b.id).is_complete, "the job to complete", 90, log=process)
            assert batch_status_sync(batch.id).status is BatchStatus.COMPLETED
        results = batch_results_sync(made[0].id)
        assert [r.response.text for r in results] == [f"Mock response for doc-{i}" for i in range(25)]
        store = runtime_for(setup.app).store
        client = store.redis
        assert isinstance(store, ClusterStore) and isinstance(client, RedisCluster)
        assert len({client.get_node_from_key(store.job_key(b.id)).name for b in made}) >= 2
        listed = {b.id: b for b in batch_list_sync(limit=20)}
        assert set(listed) == {b.id for b in made}
        assert all(b.completed_count == 25 and b.status is BatchStatus.COMPLETED for b in listed.values())
        # The CLI lists them too, from another process with nothing but the configuration.
        cli = subprocess.run(
            [sys.executable, "-m", "batchline", "jobs"], capture_output=True, text=True, env=setup.env, cwd=ROOT
        )
        assert cli.returncode == 0, cli.stderr[-2000:]
        assert all(b.id in cli.stdout for b in made), cli.stdout
        assert process.output().count("Task batchline.poll_due[") >= 1  # the due set lives on the cluster too
        assert "Summarise document" not in process.output()
    finally:
        worker._current = None
        process.stop()
        setup.cleanup()


def test_the_adapters_keep_their_scratch_in_one_slot_each_on_a_cluster(cluster_store: ClusterStore) -> None:
    """Gemini's part record and the test provider's batch are transactions over several keys of one adapter."""
    gemini = GeminiProvider("gemini-2.5-flash", ProviderContext(Settings(), cluster_store.scratch("gemini")))
    with PartInput.read("batchline:job-1:3", 1_000_000, [("z", b"{}"), ("a", b"{}")]) as spool:
        gemini._remember("job-1", 3, spool)
    assert gemini._positions("job-1", 3) == ["z", "a"]
    anthropic = AnthropicProvider("claude-sonnet-4-5", ProviderContext(Settings(), cluster_store.scratch("anthropic")))
    anthropic._save_ids("msgbatch_01", {"bl_abc": "a/b"})
    assert cluster_store.redis.hgetall(f"{cluster_store.prefix}{{anthropic}}:ids:msgbatch_01") == {b"bl_abc": b"a/b"}
    test = TestProvider("test", ProviderContext(Settings(), cluster_store.scratch("test")))
    snapshot = test.create("job-1", 0, [("a", b'{"messages": []}')], 1)
    assert test.find("job-1", 0) == snapshot

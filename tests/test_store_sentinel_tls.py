"""The store through Sentinel and over TLS, end to end: a master found by its Sentinel service name, and a Redis that
speaks only TLS with a certificate of a test CA. Each server runs on free ports in a temporary directory."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from batchline.config import Settings
from batchline.records import JobRecord
from batchline.runtime import make_store
from batchline.store import Store

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(ready: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():  # type: ignore[operator]
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.terminate()
        process.wait(10)


def _start(servers: list[subprocess.Popen[bytes]], *args: str) -> None:
    servers.append(subprocess.Popen(["redis-server", *args], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))


def _round_trip(store: Store) -> None:
    """A job written, a result stored and both read back, as a worker and a caller would."""
    rows = [("a", b'{"q":1}', None), ("b", b'{"q":2}', None)]
    store.create_job("j1", JobRecord(model="test", total=2, created_at=1.0), rows, [("g", ["a", "b"])])
    assert store.add_results("j1", [("a", "succeeded", b'{"ok":1}')]) == 1
    assert store.load_job("j1").succeeded == 1 and store.job_ids() == ["j1"]
    assert [r.body if r else None for r in store.results("j1", ["a", "b"])] == [b'{"ok":1}', None]


def test_the_store_finds_its_master_through_sentinel(servers: list[subprocess.Popen[bytes]], tmp_path: Path) -> None:
    master, sentinel = _free_port(), _free_port()
    _start(servers, "--port", str(master), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path))
    _wait(lambda: redis.Redis(port=master).ping(), "the master")
    conf = tmp_path / "sentinel.conf"  # Sentinel rewrites its own config: a file of its own
    conf.write_text(
        f"port {sentinel}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor bltest 127.0.0.1 {master} 1\nsentinel down-after-milliseconds bltest 5000\n"
    )
    _start(servers, str(conf), "--sentinel")
    _wait(lambda: redis.Redis(port=sentinel).execute_command("SENTINEL", "MASTERS"), "the sentinel")
    settings = Settings.load({}, {"BATCHLINE_REDIS_URL": f"redis+sentinel://127.0.0.1:{sentinel}/bltest/3"})
    store = make_store(settings)
    _round_trip(store)
    assert redis.Redis(port=master, db=3).hget("batchline:job:j1", "succeeded") == b"1"  # on the master, db 3


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _certificates(into: Path) -> tuple[Path, Path, Path]:
    """A test CA, and a certificate it signed for 127.0.0.1 with its key."""
    ca, ca_key, cert, key = (into / n for n in ("ca.crt", "ca.key", "server.crt", "server.key"))
    new_key = ["-newkey", "rsa:2048", "-nodes", "-keyout"]
    _openssl("req", "-x509", *new_key, str(ca_key), "-out", str(ca), "-days", "1", "-subj", "/CN=bltest-ca")
    _openssl("req", *new_key, str(key), "-out", str(into / "server.csr"), "-subj", "/CN=127.0.0.1")
    (into / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        str(into / "server.csr"),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "1",
        "-extfile",
        str(into / "ext"),
    )
    return ca, cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a test CA")
def test_the_store_speaks_tls_to_a_redis_with_a_certificate_of_its_ca(
    servers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    ca, cert, key = _certificates(tmp_path)
    port = _free_port()
    tls = ["--tls-port", str(port), "--port", "0", "--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    _start(
        servers, *tls, "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no", "--save", "", "--dir", str(tmp_path)
    )
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}&ssl_cert_reqs=required"
    _wait(lambda: make_store(Settings(redis_url=url)).redis.ping(), "the TLS Redis")
    _round_trip(make_store(Settings.load({}, {"BATCHLINE_REDIS_URL": url})))
    # The same Redis, without the CA: the certificate is refused, nothing is sent in the clear.
    with pytest.raises(redis.ConnectionError):
        make_store(Settings(redis_url=f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required")).redis.ping()

"""The RabbitMQ the tests run on: a vhost of their own on the machine's broker, or a private node of their own.

The machine's broker (`BATCHLINE_TEST_RABBITMQ_URL`, default `amqp://guest:guest@127.0.0.1:5672`) is shared: each test
session gets a vhost `bltest-<token>` with every queue and exchange it declares, and deletes it at its end, so runs
never see each other's queues and leave nothing behind. A test that changes the broker itself (a lower
`consumer_timeout`, a restart) starts a private node (`PrivateRabbit`) on free ports instead: the shared one is never
restarted or reconfigured. `rabbitmqctl` manages both (on this machine it runs as root, through the package's wrapper).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

RABBITMQ_URL = os.environ.get("BATCHLINE_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")


def rabbitmqctl(*args: str, node: str | None = None, timeout: float = 60) -> str:
    command = ["rabbitmqctl", *(["-n", node] if node else []), "-q", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


def reachable(url: str = RABBITMQ_URL) -> str | None:
    """None when the broker answers on its port, else why not."""
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=2).close()
    except OSError as error:
        return str(error)
    if shutil.which("rabbitmqctl") is None:
        return "rabbitmqctl is not on PATH (the tests make a vhost with it)"
    return None


class Vhost:
    """A vhost of its own on the shared broker, for the guest user; `delete` takes every queue and exchange with it."""

    def __init__(self, base: str = RABBITMQ_URL) -> None:
        self.name = f"bltest-{uuid.uuid4().hex[:10]}"
        user = urlsplit(base).username or "guest"
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, user, ".*", ".*", ".*")
        self.url = f"{base.rstrip('/')}/{self.name}"

    def queues(self) -> list[str]:
        return rabbitmqctl("list_queues", "-p", self.name, "name", "--no-table-headers").split()

    def delete(self) -> None:
        rabbitmqctl("delete_vhost", self.name)

    def exists(self) -> bool:
        return self.name in rabbitmqctl("list_vhosts", "--no-table-headers").split()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRabbit:
    """A RabbitMQ node of this test's own: its own name, ports, data directory and config (`consumer_timeout` in ms).

    The channel tick, which checks the consumer timeout, runs every half second (its default is a minute), so a low
    timeout shows within a second of passing."""

    def __init__(self, consumer_timeout_ms: int = 1_800_000) -> None:
        self.port, self.dist_port = _free_port(), _free_port()
        self.node = f"bltest{uuid.uuid4().hex[:8]}@localhost"
        self.dir = Path(tempfile.mkdtemp(prefix="bltest-rabbit-"))
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nconsumer_timeout = {consumer_timeout_ms}\n"
            "loopback_users = none\n"
        )
        (self.dir / "advanced.config").write_text("[{rabbit, [{channel_tick_interval, 500}]}].\n")
        shutil.chown(self.dir, "rabbitmq", "rabbitmq")
        for path in self.dir.iterdir():
            shutil.chown(path, "rabbitmq", "rabbitmq")
        env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_BASE": str(self.dir),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"),
        }
        self.log = (self.dir / "server.out").open("ab")
        self.process = subprocess.Popen(
            ["rabbitmq-server"], env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        try:
            self.wait_up()
        except BaseException:
            self.stop()
            raise

    def wait_up(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited: {(self.dir / 'server.out').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"the private RabbitMQ node {self.node} did not open port {self.port}")

    def stop_app(self) -> None:
        rabbitmqctl("stop_app", node=self.node)

    def start_app(self) -> None:
        rabbitmqctl("start_app", node=self.node)
        self.wait_up()

    def stop(self) -> None:
        """Stop the node and remove its data, whatever state it is in."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            rabbitmqctl("stop", node=self.node, timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, 9)
        self.process.wait(timeout=30)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

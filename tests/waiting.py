"""The one way the tests wait for something to happen: `wait_for`, and `stop_group` for the processes they start.

A test never sleeps a fixed time to let something happen, nor measures how long something took: it waits for a state
that must come, up to a generous timeout, and a timeout names what was awaited.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

T = TypeVar("T")


class HasOutput(Protocol):
    def output(self) -> str: ...


def wait_for(
    condition: Callable[[], T],
    what: str | Callable[[], str],
    timeout: float = 60.0,
    interval: float = 0.05,
    log: HasOutput | None = None,
    ignoring: tuple[type[Exception], ...] = (),
) -> T:
    """Call `condition` until it gives a true value, and return that value.

    After `timeout` seconds it fails naming `what` (a callable is asked then, so it can say what was last seen), with
    the end of `log`'s output. An exception of `ignoring` counts as not yet (a Redis that is restarting); any other
    one, or a failed assert inside `condition`, fails at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except ignoring:
            pass
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            described = what() if callable(what) else what
            tail = f"\n{log.output()[-3000:]}" if log is not None else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {described}{tail}")
        time.sleep(interval)


def group_runs(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs; a zombie (exited, not yet reaped by its new parent) does not."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():  # no /proc (macOS): ask the kernel, which counts zombies too
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            state, _parent, group = stat.read_text().rpartition(")")[2].split()[:3]
        except (OSError, ValueError):
            continue  # it ended while being read
        if int(group) == pgid and state != "Z":
            return True
    return False


def stop_group(process: subprocess.Popen[bytes], ask: Callable[[], None], timeout: float = 30.0) -> None:
    """Stop a process started with `start_new_session=True` and every process it started, and return only once none
    of them runs.

    `ask` asks it to stop (a worker's warm shutdown); whatever of the group still runs after `timeout` is killed.
    Waiting for the leader alone is not enough: a worker's embedded beat is only signalled, not joined, a worker
    killed after its timeout leaves its pool processes running, and `uv run` may end before its child. Any of them
    could still publish to the setup's queue after the test deleted its keys.
    """
    if process.poll() is None:
        ask()
    try:
        wait_for(lambda: not group_runs(process.pid), "the process group to end", timeout=timeout, interval=0.1)
    except AssertionError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    wait_for(lambda: not group_runs(process.pid), f"process group {process.pid} to end after SIGKILL", timeout=30)

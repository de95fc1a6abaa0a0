"""Pytest fixtures: one emulator server per session, reset before each test.

Register with `pytest_plugins = ["batchline.emulator.pytest_plugin"]` in a conftest.py, then ask for `emulator`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .config import EmulatorConfig
from .server import Emulator, running


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[Emulator]:
    """The session's emulator (instant timing); prefer `emulator`, which also resets it."""
    with running(EmulatorConfig()) as handle:
        yield handle


@pytest.fixture
def emulator(emulator_server: Emulator) -> Iterator[Emulator]:
    """A running emulator with no files, batches, faults or statistics, instant timing and the default template."""
    emulator_server.reset()
    defaults = EmulatorConfig()
    emulator_server.configure(
        stage_seconds=defaults.stage_seconds,
        response_template=defaults.response_template,
        shuffle_seed=defaults.shuffle_seed,
        completion_window_seconds=defaults.completion_window_seconds,
        limits=defaults.limits,
    )
    yield emulator_server

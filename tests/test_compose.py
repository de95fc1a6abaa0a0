"""docker-compose.yml, read by a real compose parser (Debian's docker-compose, installed by .ci/run)."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from .conftest import ROOT


def compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        message = "these tests need Debian's docker-compose: apt-get install docker-compose (.ci/run does it)"
        if os.environ.get("CI"):
            pytest.fail(message)  # as the Redis tests: under CI a missing tool fails, never skips
        pytest.skip(message)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHLINE_", "FLOWER_", "OPENAI_"))}
    command = [binary, "-f", str(ROOT / "docker-compose.yml"), "config"]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env={**clean, **env}, timeout=60)


def parsed(**env: str) -> dict[str, Any]:
    result = compose_config(**env)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_the_stack_has_redis_worker_beat_flower_and_the_emulator() -> None:
    services = parsed(FLOWER_BASIC_AUTH="ops:secret")["services"]
    assert set(services) == {"redis", "worker", "beat", "flower", "emulator"}
    assert services["worker"]["command"][:5] == ["celery", "-A", "batchline.worker", "worker", "-E"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "batchline.worker", "beat"]
    assert services["flower"]["command"][:4] == ["celery", "-A", "batchline.worker", "flower"]
    assert services["emulator"]["command"][:2] == ["batchline", "emulator"]
    assert "--appendonly" in services["redis"]["command"]  # the store keeps paid-for results across restarts
    for name in ("worker", "beat", "flower"):
        env = services[name]["environment"]
        assert env["BATCHLINE_BROKER_URL"] == "redis://redis:6379/0"
        assert env["BATCHLINE_REDIS_URL"] == "redis://redis:6379/0"
        assert env["OPENAI_BASE_URL"] == "http://emulator:8765/v1"  # no key, no network: the emulator by default
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert int(services["worker"]["environment"]["BATCHLINE_VISIBILITY_TIMEOUT"]) > int(
        services["worker"]["environment"]["BATCHLINE_MAX_POLL_INTERVAL"]
    )


def test_flower_is_behind_basic_auth_and_refuses_to_start_without_it() -> None:
    flower = parsed(FLOWER_BASIC_AUTH="ops:secret")["services"]["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == "ops:secret"
    missing = compose_config()
    assert missing.returncode != 0
    assert "FLOWER_BASIC_AUTH" in missing.stderr


def test_everything_is_configured_through_the_environment() -> None:
    services = parsed(
        FLOWER_BASIC_AUTH="a:b",
        BATCHLINE_QUEUE="llm",
        OPENAI_API_KEY="sk-real",
        OPENAI_BASE_URL="",
        WORKER_CONCURRENCY="8",
    )["services"]
    worker = services["worker"]
    assert worker["environment"]["BATCHLINE_QUEUE"] == "llm"
    assert worker["environment"]["OPENAI_API_KEY"] == "sk-real"
    assert worker["environment"]["OPENAI_BASE_URL"] == ""  # empty: the real provider
    assert "--concurrency=8" in worker["command"]


def test_a_missing_docker_compose_skips_outside_ci_and_fails_under_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install docker-compose"):
        compose_config()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install docker-compose"):
        compose_config()

"""Every setting is checked when it is loaded: a bad one stops the worker, the CLI and the API with one message that
names the `BATCHLINE_…` variable (or the Celery config key) and what it takes."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery
from hypothesis import given
from hypothesis import strategies as st

from batchline import worker
from batchline.config import DAY, Settings
from batchline.errors import SettingsError

from .conftest import ROOT

BAD: list[tuple[str, str, str]] = [
    # variable, value, what the message says (a regex)
    ("TTL_SECONDS", "0", r"BATCHLINE_TTL_SECONDS must be a whole number, at least 172800 seconds \(a job's keys"),
    ("TTL_SECONDS", "-1", r"BATCHLINE_TTL_SECONDS must be .*, not '-1'"),
    ("TTL_SECONDS", "86400", r"BATCHLINE_TTL_SECONDS must be a whole number, at least 172800"),
    ("TTL_SECONDS", "a week", r"BATCHLINE_TTL_SECONDS must be a whole number"),
    ("TTL_SECONDS", "2e6", r"BATCHLINE_TTL_SECONDS must be a whole number"),
    ("MAX_POLL_INTERVAL", "-5", r"BATCHLINE_MAX_POLL_INTERVAL must be a number, above 0 seconds, not '-5'"),
    ("MAX_POLL_INTERVAL", "nan", r"BATCHLINE_MAX_POLL_INTERVAL must be a number, above 0"),
    ("MAX_POLL_INTERVAL", "inf", r"BATCHLINE_MAX_POLL_INTERVAL must be a number, above 0"),
    ("SWEEP_INTERVAL", "-1", r"BATCHLINE_SWEEP_INTERVAL must be a number, above 0 and at most 86400 seconds"),
    ("SWEEP_INTERVAL", "0", r"BATCHLINE_SWEEP_INTERVAL must be"),
    ("CLAIM_TIMEOUT", "nan", r"BATCHLINE_CLAIM_TIMEOUT must be a number, above 0 and at most 86400 seconds"),
    ("VISIBILITY_TIMEOUT", "0", r"BATCHLINE_VISIBILITY_TIMEOUT must be a whole number, at least 1 seconds"),
    ("VISIBILITY_TIMEOUT", "3600.5", r"BATCHLINE_VISIBILITY_TIMEOUT must be a whole number"),
    ("TEST_DELAY", "-0.1", r"BATCHLINE_TEST_DELAY must be a number, at least 0 and at most 86400"),
    ("CLEANUP_FILES", "maybe", r"BATCHLINE_CLEANUP_FILES must be true or false"),
    ("BROKER_URL", "redis//host:6379/9", r"BATCHLINE_BROKER_URL must be a URL, scheme://.*redis://localhost:6379/0"),
    ("REDIS_URL", "localhost:6379", r"BATCHLINE_REDIS_URL must be a Redis URL, redis://"),
    ("RESULT_BACKEND", "redis:/host", r"BATCHLINE_RESULT_BACKEND must be a URL"),
    ("KEY_PREFIX", "my jobs:", r"BATCHLINE_KEY_PREFIX must be a non-empty key prefix without spaces"),
    ("QUEUE", "batch line", r"BATCHLINE_QUEUE must be a queue name without spaces"),
]


@pytest.mark.parametrize(("name", "value", "says"), BAD, ids=[f"{n}={v}" for n, v, _ in BAD])
def test_a_bad_setting_is_named_with_what_it_takes(name: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        Settings.load({}, {f"BATCHLINE_{name}": value})


def test_the_poll_cap_stays_under_the_visibility_timeout_which_stays_within_the_ttl() -> None:
    env = {"BATCHLINE_MAX_POLL_INTERVAL": "3600", "BATCHLINE_VISIBILITY_TIMEOUT": "3600"}
    with pytest.raises(SettingsError, match=r"BATCHLINE_MAX_POLL_INTERVAL \(3600s\) must stay below BATCHLINE_VIS"):
        Settings.load({}, env)
    env = {"BATCHLINE_TTL_SECONDS": str(2 * DAY), "BATCHLINE_VISIBILITY_TIMEOUT": str(3 * DAY)}
    with pytest.raises(SettingsError, match=r"BATCHLINE_VISIBILITY_TIMEOUT \(259200s\) must be at most BATCHLINE_TTL"):
        Settings.load({}, env)


def test_a_url_is_not_repeated_in_the_error_it_may_hold_a_password() -> None:
    with pytest.raises(SettingsError) as error:
        Settings.load({}, {"BATCHLINE_BROKER_URL": "redis//:s3cret@host:6379/9"})
    assert "s3cret" not in str(error.value)


@pytest.mark.parametrize(
    "entry",
    [
        "proxy.internal",
        "ftp://host",
        "https://user:s3cret@gw.test",
        "https://gw.test/?k=s3cret",
        "openai=https://user:s3cret@gw.test",
    ],
)
@pytest.mark.parametrize("variable", ["BATCHLINE_TRUSTED_BASE_URLS", "BATCHLINE_TRUSTED_RESULT_HOSTS"])
def test_a_trusted_url_must_be_a_plain_http_url_and_is_never_repeated(variable: str, entry: str) -> None:
    with pytest.raises(SettingsError, match=f"{variable} takes URLs like") as error:
        Settings.load({}, {variable: f"https://fine.test,{entry}"})
    assert "s3cret" not in str(error.value)
    loaded = Settings.load({}, {variable: "https://gw.test/v1, http://proxy.internal:8080, openai=https://oa.test"})
    with pytest.raises(SettingsError, match=f"{variable} scopes an entry to 'opneai', which is no provider's name"):
        Settings.load({}, {variable: "opneai=https://oa.test"})
    assert {"https://gw.test/v1", "http://proxy.internal:8080", "openai=https://oa.test"} in (
        {*loaded.trusted_base_urls},
        {*loaded.trusted_result_hosts},
    )


def test_a_ttl_that_would_cut_a_providers_window_short_is_refused() -> None:
    """Batches are given up two hours and a poll's wait before their job's keys expire."""
    env = {"BATCHLINE_TTL_SECONDS": str(2 * DAY), "BATCHLINE_VISIBILITY_TIMEOUT": str(2 * DAY)}
    with pytest.raises(SettingsError, match=r"BATCHLINE_TTL_SECONDS \(172800s\) less BATCHLINE_MAX_POLL_INTERVAL"):
        Settings.load({}, env | {"BATCHLINE_MAX_POLL_INTERVAL": str(DAY)})
    assert Settings.load({}, env).ttl_seconds == 2 * DAY  # the default poll cap leaves it 45 hours


def test_a_value_from_the_celery_config_is_named_as_such() -> None:
    with pytest.raises(SettingsError, match=r"batchline_ttl_seconds \(Celery config\) must be a whole number"):
        Settings.load({"batchline_ttl_seconds": 0}, {})
    with pytest.raises(SettingsError, match=r"batchline_visibility_timeout \(Celery config\)"):
        Settings.load({"batchline_visibility_timeout": 1.5}, {})
    with pytest.raises(SettingsError, match=r"batchline_cleanup_files \(Celery config\)"):
        Settings.load({"batchline_cleanup_files": "perhaps"}, {})


def test_good_values_load_as_before() -> None:
    settings = Settings.load(
        {"batchline_max_poll_interval": 1, "batchline_cleanup_files": "off"},
        {
            "BATCHLINE_TTL_SECONDS": " 172800 ",
            "BATCHLINE_VISIBILITY_TIMEOUT": "4",
            "BATCHLINE_CLAIM_TIMEOUT": "0.5",
            "BATCHLINE_BROKER_URL": "amqp://guest:guest@localhost:5672//",
            "BATCHLINE_REDIS_URL": "unix:///tmp/redis.sock",
            "BATCHLINE_RESULT_BACKEND": "db+sqlite:///results.db",
        },
    )
    assert (settings.ttl_seconds, settings.visibility_timeout, settings.max_poll_interval) == (172800, 4, 1.0)
    assert settings.claim_timeout == 0.5 and settings.cleanup_files is False
    assert Settings.load({}, {}) == Settings()


@given(st.sampled_from(["MAX_POLL_INTERVAL", "SWEEP_INTERVAL", "CLAIM_TIMEOUT", "TEST_DELAY"]), st.text(max_size=8))
def test_any_text_for_a_number_loads_finite_and_in_range_or_is_refused(name: str, value: str) -> None:
    try:
        settings = Settings.load({}, {f"BATCHLINE_{name}": value})
    except SettingsError as error:
        assert f"BATCHLINE_{name}" in str(error)
        return
    number = getattr(settings, name.lower())
    assert math.isfinite(number) and 0 <= number <= DAY


# -- as a user meets them: the worker, the celery command, the CLI ---------------------------------------------------
def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    bin_dir = str(Path(sys.executable).parent)  # `batchline worker` runs `celery` from the PATH, as installed
    env = {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


COMMANDS = {
    "celery worker": [sys.executable, "-m", "celery", "-A", "batchline.worker", "worker", "--loglevel=INFO"],
    "batchline worker": [sys.executable, "-m", "batchline", "worker"],
    "celery beat": [sys.executable, "-m", "celery", "-A", "batchline.worker", "beat"],
}
SETTINGS = {
    "BATCHLINE_TTL_SECONDS": ("0", "BATCHLINE_TTL_SECONDS must be a whole number, at least 172800 seconds"),
    "BATCHLINE_BROKER_URL": ("redis//127.0.0.1:6379/9", "BATCHLINE_BROKER_URL must be a URL, scheme://"),
    "BATCHLINE_CLAIM_TIMEOUT": ("nan", "BATCHLINE_CLAIM_TIMEOUT must be a number, above 0"),
}


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_worker_with_a_bad_setting_exits_with_that_one_message(
    clean_env: dict[str, str], command: str, setting: str
) -> None:
    value, says = SETTINGS[setting]
    result = run(COMMANDS[command], {**clean_env, setting: value})
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith(f"batchline: {says}"), result.stdout + result.stderr


@pytest.mark.parametrize("setting", SETTINGS)
def test_submit_with_a_bad_setting_says_so_in_one_line(clean_env: dict[str, str], tmp_path: Path, setting: str) -> None:
    value, says = SETTINGS[setting]
    requests = tmp_path / "in.jsonl"
    requests.write_text('{"custom_id": "a", "prompt": "hello"}\n')
    env = {**clean_env, "BATCHLINE_BROKER_URL": "redis://127.0.0.1:6379/0", setting: value}
    result = run([sys.executable, "-m", "batchline", "submit", str(requests), "--model", "test"], env)
    assert result.returncode == 1
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and f"SettingsError: {says}" in lines[0], result.stdout + result.stderr


def test_the_celery_config_a_worker_shows_holds_no_password() -> None:
    """`celery inspect conf` and Flower's config page show the app's config, censored only where Celery knows."""
    secret = "redis://:s3cret-pw@127.0.0.1:6379/9"
    app = Celery("bltest-conf", set_as_current=False)
    worker.configure(app, Settings.load({}, {"BATCHLINE_BROKER_URL": secret, "BATCHLINE_RESULT_BACKEND": secret}))
    assert "s3cret-pw" not in repr(app.conf.table(with_defaults=True, censored=True))


def test_a_number_too_large_for_a_float_is_named_not_a_crash() -> None:
    with pytest.raises(SettingsError, match="BATCHLINE_TTL_SECONDS"):
        Settings.load({}, {"BATCHLINE_TTL_SECONDS": "9" * 400})

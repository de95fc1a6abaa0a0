"""batch_create's own arguments: every number is finite, in range and whole where it counts, the model string names a
model, and a refusal is a BatchInputError naming the parameter and its range, raised before anything is stored."""

from __future__ import annotations

import math
import subprocess
import sys
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import pytest
from celery import shared_task
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_ai import ModelRequest

from batchline import BatchInputError, batch_create_sync, batch_wait_sync, model_request_batch_sync, worker
from batchline.config import Settings
from batchline.runtime import runtime_for
from batchline.store import Store
from batchline.validation import CHUNK_SIZE, MAX_RESUBMISSIONS, POLL_INTERVAL, SUBMIT_WAIT, TIMEOUT, Range, check_model

from .conftest import ROOT, RealSetup, set_embedded_settings, with_settings

CALLBACK = "bltest.validation_callback"


@shared_task(name=CALLBACK)
def validation_callback(job_id: str, custom_ids: list[str]) -> None:
    """An allowed callback for the accepted jobs of the property test; it does nothing."""


def prompts(count: int = 1) -> list[tuple[str, list[ModelRequest]]]:
    return [(f"item-{i}", [ModelRequest.user_text_prompt(f"Describe item {i}")]) for i in range(count)]


def snapshot(store: Store) -> tuple[set[bytes], set[str]]:
    return set(store.redis.keys("*")), set(store.job_ids(1_000_000))


def new_keys(store: Store, before: tuple[set[bytes], set[str]]) -> set[bytes]:
    """Keys written since `before` that belong to no job known then (an earlier job may still be delivering)."""
    keys, jobs = before
    return {key for key in set(store.redis.keys("*")) - keys if not any(job in key.decode() for job in jobs)}


@pytest.fixture
def store(embedded: Settings) -> Store:
    set_embedded_settings(with_settings(embedded, allowed_callbacks=frozenset({CALLBACK})))
    return runtime_for(worker.app).store


# -- the examples of the issue ----------------------------------------------------------------------------------------
BAD: list[tuple[dict[str, Any], str]] = [
    ({"poll_interval": math.nan}, r"poll_interval must be a number above 0 and at most 86400 seconds, not nan"),
    ({"poll_interval": math.inf}, r"poll_interval must be .* not inf"),
    ({"poll_interval": 0}, r"poll_interval must be a number above 0"),
    ({"poll_interval": "60"}, r"poll_interval must be a number .* not '60'"),
    ({"timeout": math.inf}, r"timeout must be a number above 0 and at most 2678400 seconds, not inf"),
    ({"timeout": -1}, r"timeout must be"),
    ({"chunk_size": 2.5}, r"chunk_size must be a whole number from 1 to 10000 custom_ids, not 2\.5"),
    ({"chunk_size": 10.0}, r"chunk_size must be a whole number"),
    ({"chunk_size": True}, r"chunk_size must be a whole number .* not True"),
    ({"chunk_size": 0}, r"chunk_size must be"),
    ({"max_resubmissions": 1e9}, r"max_resubmissions must be a whole number from 0 to 10, not 1000000000\.0"),
    ({"max_resubmissions": 11}, r"max_resubmissions must be"),
    ({"max_resubmissions": False}, r"max_resubmissions must be"),
    ({"submit_wait": -1}, r"submit_wait must be a number from 0 to 3600 seconds"),
    ({"submit_wait": math.nan}, r"submit_wait must be"),
    ({"callback": ""}, r"callback must name a task"),
    ({"on_complete": ""}, r"on_complete must name a task"),
]


@pytest.mark.parametrize(("options", "message"), BAD, ids=[str(o) for o, _ in BAD])
def test_a_bad_number_is_refused_naming_the_parameter_and_its_range_before_anything_is_stored(
    store: Store, options: dict[str, Any], message: str
) -> None:
    before = snapshot(store)
    with pytest.raises(BatchInputError, match=message):
        batch_create_sync("test", prompts(), submit_wait=options.pop("submit_wait", 0), **options)
    assert new_keys(store, before) == set()


@pytest.mark.parametrize("option", ["poll_interval", "timeout", "max_resubmissions"])
def test_model_request_batch_refuses_them_too(store: Store, option: str) -> None:
    before = snapshot(store)
    with pytest.raises(BatchInputError, match=option):
        model_request_batch_sync("test", prompts(), **{option: math.nan})
    assert new_keys(store, before) == set()


@pytest.mark.parametrize("model", ["openai:", "anthropic: ", "google:", "test:", "openai", ":", "", " ", "test: x"])
def test_a_model_string_without_a_model_name_is_refused(store: Store, model: str) -> None:
    before = snapshot(store)
    with pytest.raises(BatchInputError, match=r"model .*(names no model|spaces around).*'openai:gpt-4o-mini'"):
        batch_create_sync(model, prompts(), submit_wait=0)
    assert new_keys(store, before) == set()


def test_a_chunk_size_of_three_delivers_in_chunks_of_three(store: Store) -> None:
    # chunk_size=2.5 used to complete the job and deliver nothing; a whole number still works as before.
    batch = batch_wait_sync(batch_create_sync("test", prompts(7), callback=CALLBACK, chunk_size=3, submit_wait=0))
    assert batch.completed_count == 7
    assert store.load_job(batch.id).chunk_size == 3


# -- property: any value is accepted and valid, or refused with BatchInputError and nothing stored ---------------------
ANY_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.booleans(),
    st.fractions(max_denominator=7),
    st.decimals(allow_nan=False, places=2, min_value=-10, max_value=100_000),
    st.none(),
    st.sampled_from(["", "1", "nan", b"1", [1], 0.0, -0.0, 1e-300, 3.0, 10**400, Decimal("NaN"), Decimal("1")]),
)
NEAR = {  # values close to each range's ends, where mistakes live
    "poll_interval": [0, 1e-9, 0.1, 60, 86400, 86400.5],
    "timeout": [None, 0, 1, 2678400, 2678401],
    "chunk_size": [0, 1, 2, 2.5, 10_000, 10_001],
    "max_resubmissions": [-1, 0, 2, 10, 11],
    "submit_wait": [-0.5, 0, 0.01, 3600, 3601],
}


def valid(value: object, allowed: Range) -> bool:
    """The rule, spelled out on its own: a real number (no bool), whole if asked, finite, in the range."""
    if isinstance(value, bool) or not isinstance(value, int | float | Fraction | Decimal):
        return False
    if allowed.integer and not isinstance(value, int):
        return False
    if isinstance(value, Decimal) and not value.is_finite():
        return False
    if isinstance(value, int) and abs(value) > 10**300:
        return False
    low_ok = value > allowed.low if allowed.low_open else value >= allowed.low
    return math.isfinite(float(value)) and low_ok and value <= allowed.high


def value_for(name: str) -> st.SearchStrategy[object]:
    return st.one_of(ANY_NUMBER, st.sampled_from(NEAR[name]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    poll_interval=value_for("poll_interval"),
    timeout=value_for("timeout"),
    chunk_size=value_for("chunk_size"),
    max_resubmissions=value_for("max_resubmissions"),
    submit_wait=st.one_of(ANY_NUMBER, st.sampled_from(NEAR["submit_wait"])).map(
        lambda v: v if not isinstance(v, int | float) or isinstance(v, bool) or not 0 <= v <= 3600 else 0
    ),  # an accepted wait is waited for: keep the accepted ones at 0, the property is the same
    callback=st.one_of(st.none(), st.sampled_from(["", CALLBACK, "os.system", " "]), st.integers()),
    model=st.sampled_from(["test", "test:", "test:mock", "test: ", "openai:", "google", " :x"]),
)
def test_any_arguments_are_accepted_and_valid_or_refused_with_nothing_stored(
    store: Store,
    poll_interval: object,
    timeout: object,
    chunk_size: object,
    max_resubmissions: object,
    submit_wait: object,
    callback: object,
    model: str,
) -> None:
    options: dict[str, Any] = {
        "poll_interval": poll_interval,
        "timeout": timeout,
        "chunk_size": chunk_size,
        "max_resubmissions": max_resubmissions,
        "submit_wait": submit_wait,
        "callback": callback,
    }
    expected = (
        valid(poll_interval, POLL_INTERVAL)
        and (timeout is None or valid(timeout, TIMEOUT))
        and valid(chunk_size, CHUNK_SIZE)
        and valid(max_resubmissions, MAX_RESUBMISSIONS)
        and valid(submit_wait, SUBMIT_WAIT)
        and callback in (None, CALLBACK)
        and model in ("test", "test:mock")
    )
    before = snapshot(store)
    try:
        batch = batch_create_sync(model, prompts(), **options)
    except BatchInputError as error:
        assert not expected, f"a valid call was refused: {error}"
        assert new_keys(store, before) == set()
        return
    assert expected, f"accepted: {options}"
    job = store.load_job(batch.id)
    assert job.poll_interval == float(poll_interval)  # type: ignore[arg-type]
    assert job.chunk_size == chunk_size and job.max_resubmissions == max_resubmissions
    assert batch_wait_sync(batch).is_complete  # and the job it made runs to its end


@given(st.text(max_size=12))
def test_check_model_answers_the_model_or_batch_input_error(model: str) -> None:
    try:
        assert check_model(model) == model
    except BatchInputError as error:
        assert "'openai:gpt-4o-mini'" in str(error)
        return
    _, colon, name = model.partition(":")
    assert name.strip() if colon else model.strip() and model not in ("openai", "anthropic", "google")


# -- the command line ----------------------------------------------------------------------------------------------
def batchline(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "batchline", *args]
    return subprocess.run(command, capture_output=True, text=True, env={**env, "COLUMNS": "200"}, cwd=ROOT, timeout=120)


@pytest.mark.redis
@pytest.mark.parametrize(
    ("args", "code", "says"),
    [  # argparse refuses a bad option (exit 2, its usage line first); the API's check names the rest (exit 1)
        (["--model", "test", "--poll-interval", "nan"], 2, "argument --poll-interval: expected a number of seconds"),
        (["--model", "test", "--poll-interval", "inf"], 2, "argument --poll-interval: expected a number of seconds"),
        (["--model", "openai:"], 1, "model 'openai:' names no model"),
    ],
)
def test_submit_refuses_them_in_one_line_and_stores_nothing(
    real_setup: RealSetup, tmp_path: Path, args: list[str], code: int, says: str
) -> None:
    requests = tmp_path / "in.jsonl"
    requests.write_bytes(orjson.dumps({"custom_id": "a", "prompt": "hello"}) + b"\n")

    def keys() -> set[bytes]:
        return set(real_setup.client.scan_iter(match=f"{real_setup.settings.key_prefix}*"))

    before = keys()
    result = batchline("submit", str(requests), *args, env=real_setup.env)
    assert result.returncode == code
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert says in lines[-1] and len(lines) == code, result.stderr  # the usage line, then the error: one line each
    assert "Traceback" not in result.stdout + result.stderr
    assert keys() == before

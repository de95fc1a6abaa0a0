"""One error tree: a user catches everything batchline raises with `except BatchlineError`, and each error still
is the built-in kind older code caught (ValueError for bad input, LookupError for a missing job)."""

from __future__ import annotations

import pytest

import batchline
from batchline import errors


def test_every_error_batchline_defines_is_a_batchline_error() -> None:
    defined = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert len(defined) >= 9
    assert all(issubclass(kind, batchline.BatchlineError) for kind in defined)


def test_bad_input_is_still_a_value_error_and_a_missing_job_a_lookup_error() -> None:
    assert issubclass(batchline.BatchInputError, ValueError)
    assert issubclass(errors.SettingsError, ValueError)
    assert issubclass(batchline.JobNotFound, LookupError)


def test_a_missing_job_is_caught_by_the_base_class() -> None:
    with pytest.raises(batchline.BatchlineError, match="batch_nope"):
        batchline.batch_status_sync("batch_nope")

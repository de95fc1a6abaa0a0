"""The checks of `batch_create`'s own arguments (numbers and the model string), before anything is stored or sent.

A value that passes is one the workers can run with: a NaN poll interval would leave a job polling never, a
fractional chunk size would deliver nothing, an infinite timeout cannot be stored. Each refusal is a
`BatchInputError` naming the parameter and the range it takes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from numbers import Integral, Real

from .errors import BatchInputError

DAY = 24 * 3600


@dataclass(frozen=True)
class Range:
    """A closed range `[low, high]`, or `(low, high]` when `low_open`; `integer` takes whole numbers only."""

    low: float
    high: float
    unit: str
    low_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        if self.low_open:
            return f"{kind} above {plain_number(self.low)} and at most {plain_number(self.high)}{self.unit}"
        return f"{kind} from {plain_number(self.low)} to {plain_number(self.high)}{self.unit}"


def plain_number(number: float) -> str:
    """12.0 as 12, 0.5 as 0.5: a bound as a person writes it."""
    return str(int(number)) if number == int(number) else f"{number:g}"


POLL_INTERVAL = Range(0, DAY, " seconds", low_open=True)
"""The first wait between two polls; it grows from there up to the workers' `max_poll_interval`."""
TIMEOUT = Range(0, 31 * DAY, " seconds", low_open=True)
"""A provider's window is a day or two, and a job runs at most 1 + `max_resubmissions` windows: a month is ample."""
CHUNK_SIZE = Range(1, 10_000, " custom_ids", integer=True)
"""Each callback message carries a chunk's custom_ids; ten thousand of them is already a large message."""
MAX_RESUBMISSIONS = Range(0, 10, "", integer=True)
"""Every resubmission is a new provider batch with a window of its own."""
SUBMIT_WAIT = Range(0, 3600, " seconds")
"""How long `batch_create` blocks its caller."""


def check_number(name: str, value: object, allowed: Range) -> float:
    """`value` as a plain float (a whole one when `allowed.integer`), or BatchInputError naming `name` and the range."""
    error = BatchInputError(f"{name} must be {allowed.describe()}, not {value!r}.")
    if isinstance(value, bool) or not isinstance(value, Real | Decimal):  # True is an int to Python, not a count
        raise error
    if allowed.integer and not isinstance(value, Integral):
        raise error
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        raise error from None
    if not math.isfinite(number) or number > allowed.high:
        raise error
    if number < allowed.low or (allowed.low_open and number == allowed.low):
        raise error
    return number


@dataclass(frozen=True)
class JobNumbers:
    poll_interval: float
    timeout: float | None
    chunk_size: int
    max_resubmissions: int
    submit_wait: float


def check_numbers(
    *, poll_interval: object, timeout: object, chunk_size: object, max_resubmissions: object, submit_wait: object
) -> JobNumbers:
    """Every number `batch_create` takes, checked and turned into plain floats and ints."""
    return JobNumbers(
        poll_interval=check_number("poll_interval", poll_interval, POLL_INTERVAL),
        timeout=None if timeout is None else check_number("timeout", timeout, TIMEOUT),
        chunk_size=int(check_number("chunk_size", chunk_size, CHUNK_SIZE)),
        max_resubmissions=int(check_number("max_resubmissions", max_resubmissions, MAX_RESUBMISSIONS)),
        submit_wait=check_number("submit_wait", submit_wait, SUBMIT_WAIT),
    )


_PROVIDERS_NEEDING_A_MODEL = ("openai", "anthropic", "google", "groq", "together", "azure", "mistral")


def check_model(model: object) -> str:
    """A model string that names a model: `openai:` or a bare `openai` would send the provider no model name."""
    example = "write it like 'openai:gpt-4o-mini', or 'test'"
    if not isinstance(model, str):
        raise BatchInputError(f"model must be a string or a pydantic-ai Model ({example}), not {type(model).__name__}.")
    prefix, colon, name = model.partition(":")
    if not model.strip() or (colon and not name.strip()) or (not colon and prefix in _PROVIDERS_NEEDING_A_MODEL):
        raise BatchInputError(f"model {model!r} names no model; {example}.")
    if name != name.strip() or prefix != prefix.strip():
        raise BatchInputError(f"model {model!r} has spaces around its parts; {example}.")
    return model

"""What the `batchline` CLI's command modules share: argparse types and the shape of a command's handler.

Its own module so that cli.py imports the command modules and none of them imports cli.py back.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeAlias

from rich.console import Console

Handler: TypeAlias = Callable[[argparse.Namespace, Console], int]
"""A command's handler, set with `set_defaults(handler=...)`: it returns the exit code."""

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""The parser's subcommands, to which each command module adds its own."""


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (0 and negatives would silently mean 'all' or 'none')."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text}")
    return value

"""`batchline submit`'s cost options: `--estimate` (the job's tokens and cost, nothing sent) and `--max-cost`.

pydantic-ai loads inside the handler, as in cli_jobs.py: `batchline --help` and `batchline worker` need none of it.
"""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from .estimate import CostEstimate


def add_arguments(submit: argparse.ArgumentParser) -> None:
    submit.add_argument(
        "--max-cost",
        type=usd_amount,
        metavar="USD",
        help="a budget in USD at batch prices: the job is refused when its estimated cost cannot stay within it, "
        "and once its cost passes it while it runs, what has not run yet is cancelled",
    )
    submit.add_argument(
        "--estimate",
        action="store_true",
        help="print the job's estimated tokens and cost and stop: nothing is stored or sent, no broker is needed "
        "(with --max-cost: exit 1 when submit would refuse the job)",
    )


def usd_amount(text: str) -> Decimal:
    """An argparse type: an amount of USD above 0."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"expected an amount of USD above 0, got {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"expected an amount of USD above 0, got {text}")
    return value


def show_estimate(model: str, requests: list[Any], max_cost: Decimal | None, console: Console) -> int:
    """Print the estimate; with a budget, say whether `submit` would take the job (exit 0) or refuse it (exit 1)."""
    from .api import estimate_cost_sync
    from .costs import usd
    from .errors import BatchInputError
    from .estimate import refuse_over_budget

    found = estimate_cost_sync(model, requests)
    console.print(estimate_table(found))
    if max_cost is None:
        return 0
    try:
        refuse_over_budget(found, max_cost)
    except BatchInputError as refused:
        console.print(f"--max-cost {usd(max_cost)}: submit would refuse this job: {refused}", highlight=False)
        return 1
    console.print(
        f"--max-cost {usd(max_cost)}: the lower bound stays within it; submit would take the job", highlight=False
    )
    return 0


def estimate_table(found: CostEstimate) -> Table:
    from .costs import usd

    table = Table(
        title=f"Estimate for {found.requests:,} requests to {found.model} (nothing was sent)", box=box.SIMPLE_HEAD
    )
    for name in ("", "lower", "typical", "upper"):
        table.add_column(name, justify="right" if name else "left")
    table.add_column("how", overflow="fold")
    for name, tokens in (("input tokens", found.input_tokens), ("output tokens", found.output_tokens)):
        table.add_row(name, f"{tokens.lower:,}", _count(tokens.typical), _count(tokens.upper), tokens.method)
    cost = found.cost
    table.add_row(
        "cost (USD)",
        "unknown" if cost.lower is None else usd(cost.lower),
        "",
        "unknown" if cost.upper is None else usd(cost.upper),
        cost.method,
    )
    return table


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"

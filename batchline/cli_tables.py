"""What the CLI prints of a job: its parts as a table, its usage and cost as a line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:  # pydantic loads in the handlers, not when the CLI starts
    from .records import PartRecord
    from .types import Batch


def stored_parts_of(job_id: str, count: int) -> list[PartRecord]:
    from .runtime import runtime_for
    from .status import stored_parts
    from .worker import current_app

    return stored_parts(runtime_for(current_app()), job_id, count)


def status_table(batch: Batch, stored: list[PartRecord] | None = None) -> Table:
    from .status import job_counts, part_counts

    table = Table(title=f"{batch.id} ({batch.model}): {batch.status.name}")
    table.add_column("part")
    table.add_column("provider batch", overflow="fold")
    table.add_column("provider status")
    table.add_column("requests", justify="right")
    table.add_column("succeeded", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("not run", justify="right")
    parts = stored_parts_of(batch.id, len(batch.provider_batches)) if stored is None else stored
    for part, fields in zip(batch.provider_batches, parts, strict=True):
        table.add_row(
            str(part.part),
            part.id or "-",
            part.status + (f" ({part.error})" if part.error else ""),
            str(part.request_count),
            *(str(count) for count in part_counts(fields)),
        )
    ok, failed, not_run = job_counts(batch, parts)
    table.caption = (
        f"{ok} succeeded, {failed} failed, {not_run} not run (cancelled or expired) of {batch.request_count}"
    )
    if batch.cached_count:
        table.caption += f"; {batch.cached_count} answered from the cache or an identical request (not sent)"
    if batch.anomaly_count:
        table.caption += f"; {batch.anomaly_count} result lines from the provider matched no request and were skipped"
    table.caption += f"\n{usage_text(batch)}"
    if batch.cancel_reason:
        table.caption += f"\ncancelled by batchline: {batch.cancel_reason}"
    return table


def usage_text(batch: Batch) -> str:
    """The job's token usage and its cost, as a line: `1,200 input + 340 output tokens, cost $0.000012`."""
    from .costs import usd

    usage = batch.usage
    budget = f" of max_cost {usd(batch.max_cost)}" if batch.max_cost is not None else ""
    return f"{usage.input_tokens:,} input + {usage.output_tokens:,} output tokens, cost {cost_text(batch)}{budget}"


def cost_text(batch: Batch) -> str:
    """The job's cost in USD at batch prices, or `unknown` when there is no price for its model (never a made-up 0)."""
    if batch.cost is None:
        return "unknown"
    return f"${batch.cost:,.2f}" if batch.cost >= 1 else f"${batch.cost:.6f}"

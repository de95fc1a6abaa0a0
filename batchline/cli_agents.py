"""The CLI's view of an agent job (`batchline.agents`): its runs by state and step, and their results as lines."""

from __future__ import annotations

import argparse
import sys
from typing import IO

import orjson
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .types import Batch


def agent_table(batch: Batch) -> Group:
    """The job's line, its runs by where they are, and its counts: lines of their own, as the table is narrow."""
    progress = batch.agent
    assert progress is not None
    table = Table()
    table.add_column("runs")
    table.add_column("count", justify="right")
    rows = [("not started", progress.not_started)]
    rows += [(f"waiting on model request {step}", count) for step, count in sorted(progress.runs_by_step.items())]
    rows += [("succeeded", progress.succeeded), ("failed", progress.failed), ("cancelled", progress.cancelled)]
    for name, count in rows:
        table.add_row(name, str(count))
    usage = batch.usage
    counts = (
        f"{batch.request_count} runs; {progress.waiting} model requests in flight, {progress.model_requests} made, "
        f"{progress.tool_calls} tool calls executed\n"
        f"{usage.input_tokens:,} input + {usage.output_tokens:,} output tokens"
    )
    title = Text(f"{batch.id} (agent {batch.model}): {batch.status.name}", style="bold")
    return Group(title, table, Text(counts))


def write_agent_results(job_id: str, out: IO[bytes]) -> int:
    """One JSON line per ended run: its custom_id, state, output (as JSON), error and usage."""
    from pydantic import TypeAdapter
    from pydantic_ai.usage import RunUsage

    from .agents.api import results_sync

    usage = TypeAdapter(RunUsage)
    count = 0
    for run in results_sync(job_id):
        line = {
            "custom_id": run.custom_id,
            "state": run.state.value,
            "output": orjson.Fragment(TypeAdapter(object).dump_json(run.output)) if run.output is not None else None,
            "error": run.error,
            "usage": None if run.usage is None else orjson.Fragment(usage.dump_json(run.usage)),
        }
        out.write(orjson.dumps(line) + b"\n")
        count += 1
    return count


def export_agent_results(args: argparse.Namespace, console: Console) -> int:
    """`batchline results` for an agent job: to stdout, or to `-o FILE`."""
    out: IO[bytes] = sys.stdout.buffer if args.output is None else args.output.open("wb")
    try:
        count = write_agent_results(args.job_id, out)
    finally:
        if args.output is not None:
            out.close()
    if args.output is not None:
        console.print(f"{count} runs written to {args.output}")
    return 0

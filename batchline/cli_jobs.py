"""The job commands of the `batchline` CLI: submit, status, wait, results, cancel, jobs."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson
from pydantic import TypeAdapter
from pydantic_ai.messages import ModelMessagesTypeAdapter, ModelRequest, ModelResponse
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .raw import RawRequest, from_line, json_lines, parse_lines
from .types import Batch, BatchInputError, BatchResult

_RESPONSE = TypeAdapter(ModelResponse)


def add_commands(commands: Any) -> None:
    submit = commands.add_parser("submit", help="submit a JSONL file of requests as one job; prints the job id")
    submit.add_argument(
        "file",
        type=Path,
        help="JSONL of {custom_id, prompt} or {custom_id, messages} lines, or a provider's own batch file "
        "(OpenAI {custom_id, method, url, body} or Anthropic {custom_id, params} lines), sent unchanged",
    )
    submit.add_argument("--model", required=True, help="model string, e.g. openai:gpt-4o-mini")
    submit.add_argument("--poll-interval", type=float, default=60.0)
    for name, text in (("status", "show a job's state"), ("cancel", "cancel a job"), ("wait", "wait for a job")):
        command = commands.add_parser(name, help=text)
        command.add_argument("job_id")
    wait = commands.choices["wait"]
    wait.add_argument("--timeout", type=float, default=None, help="give up after this many seconds (exit 2)")
    results = commands.add_parser("results", help="write a job's results as JSONL")
    results.add_argument("job_id")
    results.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    results.add_argument(
        "--format",
        choices=("auto", "provider", "batchline"),
        default="auto",
        help="provider: the provider's own results file; batchline: decoded ModelResponses (auto: provider for "
        "raw jobs)",
    )
    jobs = commands.add_parser("jobs", help="list recent jobs")
    jobs.add_argument("--limit", type=int, default=20)


def run(args: argparse.Namespace, console: Console) -> int:
    from . import api
    from .config import Settings

    if Settings.load().embedded:
        raise RuntimeError(
            "job commands need a store other processes share: set BATCHLINE_BROKER_URL (and BATCHLINE_REDIS_URL) "
            "to your Redis; the embedded default lives inside one process (try `batchline demo`)."
        )

    if args.command == "submit":
        requests: list[Any] = list(read_requests(args.file))
        batch = api.batch_create_sync(args.model, requests, poll_interval=args.poll_interval, submit_wait=0)
        print(batch.id)
        return 0
    if args.command == "status":
        console.print(status_table(api.batch_status_sync(args.job_id)))
        return 0
    if args.command == "cancel":
        batch = api.batch_cancel_sync(args.job_id)
        console.print(f"{batch.id}: {batch.status.name}")
        return 0
    if args.command == "wait":
        return wait(args.job_id, args.timeout, console)
    if args.command == "results":
        return export(args, console)
    table = Table("job", "model", "status", "requests", "succeeded", "failed", "created")
    for batch in api.batch_list_sync(args.limit):
        table.add_row(
            batch.id,
            batch.model,
            batch.status.name,
            str(batch.request_count),
            str(batch.completed_count),
            str(batch.failed_count),
            batch.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)
    return 0


def export(args: argparse.Namespace, console: Console) -> int:
    from . import api
    from .runtime import runtime_for
    from .worker import current_app

    provider_format = args.format == "provider"
    if args.format == "auto":
        provider_format = bool(runtime_for(current_app()).store.job(args.job_id).get("raw"))
    out: IO[bytes] = sys.stdout.buffer if args.output is None else args.output.open("wb")
    try:
        if provider_format:
            count = api.batch_export_sync(args.job_id, out)
        else:
            results = api.batch_results_sync(args.job_id)
            write_results(results, out)
            count = len(results)
    finally:
        if args.output is not None:
            out.close()
    if args.output is not None:
        console.print(f"{count} results written to {args.output}")
    return 0


def read_requests(path: Path) -> Iterator[tuple[str, list[Any]] | RawRequest]:
    """Requests from JSONL lines `{"custom_id", "prompt"}` or `{"custom_id", "messages"}`, or a provider's own batch
    lines (raw mode, told apart by their first line); a bad line is named by its number."""
    with path.open("rb") as lines:
        first = next((line for line in lines if line.strip()), b"")
        lines.seek(0)
        try:
            raw = from_line(orjson.loads(first)) is not None
        except orjson.JSONDecodeError:
            raw = False
        if raw:
            yield from parse_lines(lines, str(path))
            return
        for number, item in json_lines(lines, str(path)):
            if not isinstance(item, dict) or not isinstance(item.get("custom_id"), str):
                raise BatchInputError(f"{path}, line {number}: expected an object with a string custom_id")
            if isinstance(item.get("prompt"), str):
                yield item["custom_id"], [ModelRequest.user_text_prompt(item["prompt"])]
            elif isinstance(item.get("messages"), list):
                try:
                    yield item["custom_id"], ModelMessagesTypeAdapter.validate_python(item["messages"])
                except ValueError as error:
                    raise BatchInputError(f"{path}, line {number}: messages are not pydantic-ai messages") from error
            else:
                raise BatchInputError(f"{path}, line {number}: needs a 'prompt' string or a 'messages' list")


def write_results(results: list[BatchResult], out: IO[bytes]) -> None:
    for result in results:
        line = {
            "custom_id": result.custom_id,
            "status": "succeeded" if result.is_successful else "errored",
            "response": None if result.response is None else orjson.Fragment(_RESPONSE.dump_json(result.response)),
            "error": None if result.error is None else {"code": result.error.code, "message": result.error.message},
        }
        out.write(orjson.dumps(line) + b"\n")


def status_table(batch: Batch) -> Table:
    table = Table(title=f"{batch.id} ({batch.model}): {batch.status.name}")
    table.add_column("part")
    table.add_column("provider batch")
    table.add_column("provider status")
    table.add_column("requests", justify="right")
    table.add_column("succeeded", justify="right")
    table.add_column("failed", justify="right")
    for part in batch.provider_batches:
        table.add_row(
            str(part.part),
            part.id or "-",
            part.status + (f" ({part.error})" if part.error else ""),
            str(part.request_count),
            str(part.completed_count),
            str(part.failed_count),
        )
    table.caption = f"{batch.completed_count} succeeded, {batch.failed_count} failed of {batch.request_count}"
    return table


def wait(job_id: str, timeout: float | None, console: Console) -> int:
    """A live progress bar until the job is complete; exit 0 when it completed, 1 otherwise, 2 on timeout."""
    from .api import batch_status_sync

    deadline = None if timeout is None else time.monotonic() + timeout
    batch = batch_status_sync(job_id)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bar = progress.add_task(f"{job_id} {batch.status.name}", total=batch.request_count)
        delay = 0.2
        while True:
            progress.update(
                bar,
                completed=batch.completed_count + batch.failed_count,
                description=f"{job_id} {batch.status.name}",
            )
            if batch.is_complete:
                break
            if deadline is not None and time.monotonic() >= deadline:
                console.print(f"{job_id}: still {batch.status.name} after {timeout:g}s")
                return 2
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)
            batch = batch_status_sync(job_id)
    console.print(f"{batch.id}: {batch.status.name}, {batch.completed_count} succeeded, {batch.failed_count} failed")
    return 0 if batch.is_successful else 1

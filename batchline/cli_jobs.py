"""The job commands of the `batchline` CLI: submit, status, wait, results, cancel, jobs.

pydantic and pydantic-ai load inside the handlers, not here: cli.py imports this module, and `batchline worker` and
`batchline --help` need neither.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import cli_cost, cli_embed
from .agents.records import is_agent_job
from .cli_args import Commands, positive_float, positive_int
from .cli_tables import cost_text, status_table, stored_parts_of, usage_text
from .errors import BatchInputError
from .raw import RawRequest, from_line, json_lines, parse_lines

if TYPE_CHECKING:
    from .types import BatchResult


def add_commands(commands: Commands) -> None:
    submit = commands.add_parser("submit", help="submit a JSONL file of requests as one job; prints the job id")
    submit.add_argument(
        "file",
        type=Path,
        help="JSONL of {custom_id, prompt} or {custom_id, messages} lines, {custom_id, text} lines to embed (with an "
        "embedding model), or a provider's own batch file (OpenAI {custom_id, method, url, body} or Anthropic "
        "{custom_id, params} lines), sent unchanged",
    )
    submit.add_argument(
        "--model",
        required=True,
        help="model string, e.g. openai:gpt-4o-mini; a provider's own file must name the same model in its bodies "
        "(a body naming none gets this one)",
    )
    submit.add_argument(
        "--poll-interval",
        type=positive_float,
        default=60.0,
        metavar="SECONDS",
        help="seconds between the workers' checks of the provider batch, growing by half each time up to "
        "BATCHLINE_MAX_POLL_INTERVAL (default 60; the first check comes within a second). Use 1-5 with the emulator",
    )
    cli_cost.add_arguments(submit)
    submit.add_argument(
        "--cache",
        action="store_true",
        help="answer requests from the response cache and send identical requests once (BATCHLINE_CACHE_KEY_PREFIX, "
        "BATCHLINE_CACHE_TTL_SECONDS)",
    )
    submit.add_argument("--dimensions", type=positive_int, metavar="N", help="embeddings: the vectors' length")
    submit.add_argument(
        "--input-type",
        choices=("document", "query"),
        default="document",
        help="embeddings: what the texts are (Gemini conditions the vectors on it; default document)",
    )
    submit.set_defaults(handler=_submit)
    for name, text, handler in (
        ("status", "show a job's state", _status),
        ("cancel", "cancel a job", _cancel),
        ("wait", "wait for a job", _wait),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("job_id")
        command.set_defaults(handler=handler)
    commands.choices["wait"].add_argument(
        "--timeout", type=positive_float, metavar="SECONDS", help="give up after this many seconds (exit 2)"
    )
    results = commands.add_parser("results", help="write a job's results as JSONL")
    results.add_argument("job_id")
    results.add_argument("-o", "--output", type=Path, help="file to write (default: standard output)")
    results.add_argument(
        "--format",
        choices=("auto", "provider", "batchline"),
        default="auto",
        help="provider: the provider's own results file; batchline: decoded ModelResponses, or each input's "
        "embedding (auto: provider for raw jobs)",
    )
    results.set_defaults(handler=_results)
    jobs = commands.add_parser("jobs", help="list recent jobs")
    jobs.add_argument(
        "--limit", type=positive_int, default=20, metavar="N", help="how many of the newest jobs to list (default 20)"
    )
    jobs.set_defaults(handler=_jobs)


def _need_shared_store() -> None:
    """Every job command's first step: the job must be in a store this process shares with the workers."""
    from .config import Settings

    if Settings.load().embedded:
        raise RuntimeError(
            "job commands need a store other processes share: set BATCHLINE_BROKER_URL (and BATCHLINE_REDIS_URL) "
            "to your Redis; the embedded default lives inside one process (try `batchline demo`)."
        )


def _submit(args: argparse.Namespace, console: Console) -> int:
    from . import api

    if not args.estimate:  # an estimate stores and sends nothing: it needs no shared store
        _need_shared_store()
    if cli_embed.is_embedding_file(args.file):
        if args.estimate or args.max_cost is not None or args.cache:
            raise BatchInputError("--estimate, --max-cost and --cache are for model requests, not texts to embed")
        print(cli_embed.submit(args).id)
        return 0
    cli_embed.refuse_options(args)
    requests: list[Any] = with_model(list(read_requests(args.file)), args.model)
    if args.estimate:
        return cli_cost.show_estimate(args.model, requests, args.max_cost, console)
    batch = api.batch_create_sync(
        args.model,
        requests,
        poll_interval=args.poll_interval,
        submit_wait=0,
        max_cost=args.max_cost,
        cache=args.cache,
    )
    print(batch.id)
    return 0


def _status(args: argparse.Namespace, console: Console) -> int:
    from . import api

    _need_shared_store()
    batch = api.batch_status_sync(args.job_id)
    if batch.agent is not None:
        from .cli_agents import agent_table

        console.print(agent_table(batch))
    else:
        console.print(status_table(batch))
    return 0


def _cancel(args: argparse.Namespace, console: Console) -> int:
    from . import api

    _need_shared_store()
    batch = api.batch_cancel_sync(args.job_id)
    console.print(f"{batch.id}: {batch.status.name}")
    return 0


def _wait(args: argparse.Namespace, console: Console) -> int:
    _need_shared_store()
    return wait(args.job_id, args.timeout, console)


def _results(args: argparse.Namespace, console: Console) -> int:
    _need_shared_store()
    return export(args, console)


def _jobs(args: argparse.Namespace, console: Console) -> int:
    from . import api
    from .status import job_counts

    _need_shared_store()
    table = Table(box=box.SIMPLE_HEAD)
    # A job id is what a user copies from this table: it is never cut, and on a narrow terminal the other columns
    # wrap (fold) rather than lose characters to an ellipsis.
    table.add_column("job", no_wrap=True, min_width=len("batch_") + 32)
    table.add_column("model", overflow="fold")
    table.add_column("status", overflow="fold")
    for name in ("requests", "succeeded", "failed", "not run"):
        table.add_column(name, justify="right", overflow="fold")
    for name in ("tokens in", "tokens out", "cost"):
        table.add_column(name, justify="right", overflow="fold")
    table.add_column("created", overflow="fold")
    for batch in api.batch_list_sync(args.limit):
        counts = job_counts(batch, stored_parts_of(batch.id, len(batch.provider_batches)))
        table.add_row(
            batch.id,
            batch.model,
            batch.status.name,
            str(batch.request_count),
            *(str(count) for count in counts),
            str(batch.usage.input_tokens),
            str(batch.usage.output_tokens),
            cost_text(batch),
            batch.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    console.print(table)
    return 0


def with_model(requests: list[Any], model: str) -> list[Any]:
    """Raw requests checked against `--model`: a body naming another model is refused (the job would be listed
    under the wrong model), a body naming none gets `--model`'s."""
    name = model.partition(":")[2]
    if not name:
        return requests
    out: list[Any] = []
    for request in requests:
        if isinstance(request, RawRequest):
            named = request.body.get("model")
            if named is None:
                request = RawRequest(request.custom_id, {**request.body, "model": name}, request.url)
            elif named != name:
                raise BatchInputError(
                    f"--model {model} does not match the model {named!r} that request {request.custom_id!r} names; "
                    f"submit with --model {model.partition(':')[0]}:{named} or change the file"
                )
        out.append(request)
    return out


def export(args: argparse.Namespace, console: Console) -> int:
    from . import api
    from .result_stream import batch_results_iter_sync
    from .runtime import runtime_for
    from .status import is_raw
    from .worker import current_app

    if is_agent_job(args.job_id):
        from .cli_agents import export_agent_results

        return export_agent_results(args, console)
    provider_format = args.format == "provider"
    if args.format == "auto":
        provider_format = is_raw(runtime_for(current_app()), args.job_id)
    out: IO[bytes] = sys.stdout.buffer if args.output is None else args.output.open("wb")
    try:
        if provider_format:
            count = api.batch_export_sync(args.job_id, out)
        else:
            results = batch_results_iter_sync(args.job_id)  # a chunk at a time: flat memory for any job size
            embeddings = cli_embed.is_embedding_job(args.job_id)
            count = (cli_embed.write_embeddings if embeddings else write_results)(results, out)
    finally:
        if args.output is not None:
            out.close()
    if args.output is not None:
        console.print(f"{count} results written to {args.output}")
    return 0


def read_requests(path: Path) -> Iterator[tuple[str, list[Any]] | RawRequest]:
    """Requests from JSONL lines `{"custom_id", "prompt"}` or `{"custom_id", "messages"}`, or a provider's own batch
    lines (raw mode, told apart by their first line); a bad line is named by its number."""
    try:
        lines = path.open("rb")
    except FileNotFoundError:
        raise BatchInputError(f"{path}: no such file") from None
    except OSError as error:
        raise BatchInputError(f"{path}: cannot read it ({error.strerror})") from None
    from pydantic import ValidationError
    from pydantic_ai.messages import ModelMessagesTypeAdapter, ModelRequest

    with lines:
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
                except ValidationError as error:
                    # Where and what, not chained: pydantic's error quotes the input, the prompt.
                    fault = error.errors(include_input=False, include_url=False)[0]
                    where = ".".join(map(str, fault["loc"]))
                    raise BatchInputError(
                        f"{path}, line {number}: messages are not pydantic-ai messages ({where}: {fault['msg']})"
                    ) from None
            else:
                raise BatchInputError(f"{path}, line {number}: needs a 'prompt' string or a 'messages' list")


def write_results(results: Iterable[BatchResult], out: IO[bytes]) -> int:
    """A line per result (`{"custom_id", "status", "response", "error"}`), as they come; answer how many."""
    from pydantic import TypeAdapter
    from pydantic_ai.messages import ModelResponse

    response = TypeAdapter(ModelResponse)
    count = 0
    for result in results:
        line = {
            "custom_id": result.custom_id,
            "status": "succeeded" if result.is_successful else "errored",
            "response": None if result.response is None else orjson.Fragment(response.dump_json(result.response)),
            "error": None if result.error is None else {"code": result.error.code, "message": result.error.message},
        }
        out.write(orjson.dumps(line) + b"\n")
        count += 1
    return count


def wait(job_id: str, timeout: float | None, console: Console) -> int:
    """A live progress bar until the job is complete; exit 0 when it completed, 1 otherwise, 2 on timeout."""
    from .api import batch_status_sync

    deadline = None if timeout is None else time.monotonic() + timeout
    batch = batch_status_sync(job_id)
    due = None if batch.is_complete or batch.agent is not None else next_poll(job_id)
    if due is not None and due[0] >= FAR_POLL:
        console.print(
            f"next poll in {due[0]:.0f} s (poll interval {due[1]:g} s; submit with --poll-interval to change)",
            highlight=False,
        )
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
    console.print(usage_text(batch), highlight=False)
    return 0 if batch.is_successful else 1


FAR_POLL = 10.0
"""A wait that will see no change for this many seconds says why."""


def next_poll(job_id: str) -> tuple[float, float] | None:
    """Seconds until the workers next ask the provider about the job (its soonest part), and the job's poll interval;
    None when no part is waiting at the provider.

    A part's next poll is due one countdown after its last one, the countdown its poll computed from the poll count
    it had then (the store keeps the time and the count).
    """
    from .runtime import runtime_for
    from .status import next_poll
    from .worker import current_app

    return next_poll(runtime_for(current_app()), job_id)

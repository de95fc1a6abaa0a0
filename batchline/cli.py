"""batchline runs LLM requests through the OpenAI, Anthropic and Gemini batch APIs on Celery workers with Redis.

`batchline demo` runs a small job end to end (on the embedded default unless a broker is configured),
`batchline submit|status|wait|results|cancel|jobs` manage jobs, `batchline worker` starts a Celery worker (the same
as `celery -A batchline.worker worker -E`), and `batchline emulator` serves the three providers' batch APIs for tests
and demos. Errors are one line and exit 1, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

DEMO_PROMPTS = [
    ("math-1", "What is 2 + 2?"),
    ("math-2", "What is the square root of 144?"),
    ("science-1", "What is photosynthesis?"),
    ("science-2", "Explain gravity in one sentence."),
]


DESCRIPTION = (
    "batchline runs LLM requests through the OpenAI, Anthropic and Gemini batch APIs on Celery workers with Redis."
)
EPILOG = "`batchline COMMAND --help` tells more about one command."


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["worker"]:
            # Before argparse: every option after `worker`, `--help` included, is celery's own.
            return _worker(argv[1:])
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (`batchline results JOB | head -1`): stop quietly, as a command in a pipe does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail again
        return 128 + signal.SIGPIPE


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="batchline", description=DESCRIPTION, epilog=EPILOG)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run a small batch end to end and print the results")
    demo.add_argument("--model", default="test", help="model string (default: the built-in test provider)")
    demo.add_argument("--requests", type=positive_int, default=len(DEMO_PROMPTS), help="how many requests to send")

    # Never parsed here (main hands `worker ...` to celery first); listed so that --help names it.
    commands.add_parser(
        "worker",
        help="start a Celery worker: `celery -A batchline.worker worker -E` with every option you give "
        "(e.g. --concurrency 4 -l INFO; --help shows celery's)",
    )

    from . import cli_jobs, emulator

    cli_jobs.add_commands(commands)
    emulator.add_arguments(commands.add_parser("emulator", help="serve the providers' batch APIs on one port"))

    args = parser.parse_args(argv)
    console = Console()
    try:
        if args.command == "demo":
            return _demo(console, args.model, args.requests)
        if args.command == "emulator":
            emulator.run_from_args(args)
            return 0
        return cli_jobs.run(args, console)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise
    except Exception as error:  # one clear line, never a traceback
        err = Console(stderr=True, soft_wrap=True, highlight=False)
        from .errors import BatchInputError  # here, not at the top: `batchline worker` starts without pydantic

        # A mistake in the user's input says what is wrong; anything else names its kind too.
        kind = "" if isinstance(error, BatchInputError) else f"{type(error).__name__}: "
        err.print(f"[red]batchline {args.command}:[/red] {kind}{escape(str(error))}")
        return 1


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


def _demo(console: Console, model: str, count: int) -> int:
    from pydantic_ai import ModelRequest

    from .api import batch_create_sync, batch_results_sync, batch_wait_sync
    from .config import Settings

    prompts = [DEMO_PROMPTS[i % len(DEMO_PROMPTS)] for i in range(count)]
    requests = [
        (f"{cid}-{i // len(DEMO_PROMPTS)}" if count > len(DEMO_PROMPTS) else cid, [ModelRequest.user_text_prompt(q)])
        for i, (cid, q) in enumerate(prompts)
    ]
    mode = "embedded (in-process broker, worker and Redis)" if Settings.load().embedded else "configured broker"
    console.print(f"Submitting {len(requests)} requests to [bold]{model}[/bold] on the {mode} ...")
    batch = batch_create_sync(model, requests, poll_interval=1.0, submit_wait=60)
    with console.status(f"Waiting for {batch.id} ..."):
        batch = batch_wait_sync(batch)
    table = Table(title=f"{batch.id}: {batch.status.name}")
    table.add_column("custom_id")
    table.add_column("result")
    for result in batch_results_sync(batch):
        if result.response is not None:
            table.add_row(result.custom_id, result.response.text or repr(result.response.parts))
        else:
            assert result.error is not None
            table.add_row(result.custom_id, f"[red]{result.error.code}: {result.error.message}[/red]")
    console.print(table)
    console.print(f"{batch.completed_count} succeeded, {batch.failed_count} failed.")
    return 0 if batch.is_successful else 1


def _worker(celery_args: list[str]) -> int:
    # This interpreter's celery: the one installed beside batchline, whatever PATH holds.
    argv = [sys.executable, "-m", "celery", "-A", "batchline.worker", "worker", "-E", *celery_args]
    os.execv(argv[0], argv)  # replaces this process: signals reach the worker as they would with `celery` itself
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())

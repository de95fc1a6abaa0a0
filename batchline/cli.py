"""batchline runs LLM requests through the OpenAI, Anthropic and Gemini batch APIs on Celery workers with Redis.

`batchline demo` runs a small job end to end (on the embedded default unless a broker is configured),
`batchline submit|status|wait|results|cancel|jobs` manage jobs, `batchline worker` starts a Celery worker (the same
as `celery -A batchline.worker worker -E`), and `batchline emulator` serves the three providers' batch APIs for tests
and demos. Errors are one line and exit 1, never a traceback.

This module builds the one parser and runs the handler each command registers; the commands live in cli_run.py
(demo, worker, emulator) and cli_jobs.py (the job commands), and nothing imports this module back.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from . import cli_jobs, cli_run
from .cli_args import Handler

DESCRIPTION = (
    "batchline runs LLM requests through the OpenAI, Anthropic and Gemini batch APIs on Celery workers with Redis."
)
EPILOG = "`batchline COMMAND --help` tells more about one command."


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["worker"]:
            # Before argparse: every option after `worker`, `--help` included, is celery's own.
            return cli_run.run_worker(argv[1:])
        return _run(build_parser().parse_args(argv))
    except BrokenPipeError:
        # The reader went away (`batchline results JOB | head -1`): stop quietly, as a command in a pipe does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail again
        return 128 + signal.SIGPIPE


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each sets `handler` (see cli_args.Handler) to the function that runs it."""
    parser = argparse.ArgumentParser(prog="batchline", description=DESCRIPTION, epilog=EPILOG)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # In the order --help lists them.
    cli_run.add_demo(commands)
    cli_run.add_worker(commands)
    cli_jobs.add_commands(commands)
    cli_run.add_emulator(commands)
    return parser


def _run(args: argparse.Namespace) -> int:
    handler: Handler = args.handler
    console = Console()
    try:
        return handler(args, console)
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


if __name__ == "__main__":
    sys.exit(main())

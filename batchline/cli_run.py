"""The `batchline` commands that start something on this machine: demo, worker, emulator."""

from __future__ import annotations

import argparse
import os
import sys

from rich.console import Console
from rich.table import Table

from .cli_args import Commands, positive_int

DEMO_PROMPTS = [
    ("math-1", "What is 2 + 2?"),
    ("math-2", "What is the square root of 144?"),
    ("science-1", "What is photosynthesis?"),
    ("science-2", "Explain gravity in one sentence."),
]


def add_demo(commands: Commands) -> None:
    demo = commands.add_parser("demo", help="run a small batch end to end and print the results")
    demo.add_argument("--model", default="test", help="model string (default: the built-in test provider)")
    demo.add_argument("--requests", type=positive_int, default=len(DEMO_PROMPTS), help="how many requests to send")
    demo.set_defaults(handler=_demo)


def add_worker(commands: Commands) -> None:
    # main hands `worker ...` to run_worker before argparse (every option after it, --help included, is celery's);
    # listed here so that --help names it.
    worker = commands.add_parser(
        "worker",
        help="start a Celery worker: `celery -A batchline.worker worker -E` with every option you give "
        "(e.g. --concurrency 4 -l INFO; --help shows celery's)",
    )
    worker.set_defaults(handler=_worker)


def add_emulator(commands: Commands) -> None:
    from .emulator import add_arguments  # here, not at the top: `batchline worker` starts without loading it

    emulator = commands.add_parser("emulator", help="serve the providers' batch APIs on one port")
    add_arguments(emulator)
    emulator.set_defaults(handler=_emulator)


def run_worker(celery_args: list[str]) -> int:
    # This interpreter's celery: the one installed beside batchline, whatever PATH holds.
    argv = [sys.executable, "-m", "celery", "-A", "batchline.worker", "worker", "-E", *celery_args]
    os.execv(argv[0], argv)  # replaces this process: signals reach the worker as they would with `celery` itself
    return 0  # not reached


def _worker(args: argparse.Namespace, console: Console) -> int:
    # Not reached from main, which hands `worker ...` to run_worker before parsing; here so every command has one.
    return run_worker([])


def _emulator(args: argparse.Namespace, console: Console) -> int:
    from .emulator import run_from_args

    run_from_args(args)
    return 0


def _demo(args: argparse.Namespace, console: Console) -> int:
    from pydantic_ai import ModelRequest

    from .api import batch_create_sync, batch_results_sync, batch_wait_sync
    from .config import Settings

    model, count = args.model, args.requests
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

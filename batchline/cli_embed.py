"""The CLI's embedding jobs: `submit` of a file of `{"custom_id", "text"}` lines, and `results` of such a job as
JSONL lines with each input's vector.

Like cli_jobs.py, nothing heavy loads at import: `batchline --help` imports this module.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from .errors import BatchInputError
from .raw import json_lines

if TYPE_CHECKING:
    from .types import Batch, BatchResult


def is_embedding_file(path: Path) -> bool:
    """Whether the file's first line is an embedding input: an object with a `text` string (and no prompt)."""
    try:
        with path.open("rb") as lines:
            first = next((line for line in lines if line.strip()), b"")
        item = orjson.loads(first)
    except (OSError, orjson.JSONDecodeError):
        return False  # the chat reader names what is wrong with the file
    return isinstance(item, dict) and isinstance(item.get("text"), str) and "prompt" not in item


def read_inputs(path: Path) -> Iterator[tuple[str, str]]:
    """`(custom_id, text)` of each `{"custom_id", "text"}` line; a bad line is named by its number."""
    with path.open("rb") as lines:
        for number, item in json_lines(lines, str(path)):
            if not isinstance(item, dict) or not isinstance(item.get("custom_id"), str):
                raise BatchInputError(f"{path}, line {number}: expected an object with a string custom_id")
            if not isinstance(item.get("text"), str):
                raise BatchInputError(f"{path}, line {number}: an embedding input needs a 'text' string")
            yield item["custom_id"], item["text"]


def submit(args: argparse.Namespace) -> Batch:
    """An embedding job of the file's inputs, created at once (the workers submit it)."""
    from .embed_api import batch_create_embeddings_sync

    settings: Any = {} if args.dimensions is None else {"dimensions": args.dimensions}
    return batch_create_embeddings_sync(
        args.model,
        list(read_inputs(args.file)),
        input_type=args.input_type,
        settings=settings,
        poll_interval=args.poll_interval,
        submit_wait=0,
    )


def refuse_options(args: argparse.Namespace) -> None:
    """`--dimensions` and `--input-type` shape embeddings only: on a file of prompts they would be ignored."""
    if args.dimensions is not None or args.input_type != "document":
        raise BatchInputError(
            f"{args.file}: --dimensions and --input-type are for embedding inputs ({{custom_id, text}} lines)"
        )


def is_embedding_job(job_id: str) -> bool:
    """Whether the job holds embedding inputs; False for a job the store does not hold."""
    from .embeddings import EMBEDDING
    from .runtime import runtime_for
    from .worker import current_app

    job = runtime_for(current_app()).store.job(job_id)
    return job is not None and job.kind == EMBEDDING


def write_embeddings(results: Iterable[BatchResult], out: IO[bytes]) -> int:
    """A line per input: `{"custom_id", "status", "embedding", "error"}`, the vector as a list of floats; answer how
    many."""
    count = 0
    for result in results:
        error = None if result.error is None else {"code": result.error.code, "message": result.error.message}
        line = {
            "custom_id": result.custom_id,
            "status": "succeeded" if result.embedding is not None else "errored",
            "embedding": result.embedding,
            "error": error,
        }
        out.write(orjson.dumps(line) + b"\n")
        count += 1
    return count

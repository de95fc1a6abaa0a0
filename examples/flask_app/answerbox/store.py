"""The app's own store of answers: one SQLite table, one row per request of a job."""

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    job_id TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    text TEXT NOT NULL,
    error TEXT NOT NULL,
    PRIMARY KEY (job_id, custom_id)
)
"""

# Callbacks are delivered at least once: a chunk written again updates its rows and adds none.
_UPSERT = """
INSERT INTO answers (job_id, custom_id, text, error) VALUES (?, ?, ?, ?)
ON CONFLICT (job_id, custom_id) DO UPDATE SET text = excluded.text, error = excluded.error
"""


@contextmanager
def _connect(path: str) -> Iterator[sqlite3.Connection]:
    # One short-lived connection per use: web threads and worker processes share the file, and each commits its own.
    with closing(sqlite3.connect(path, timeout=20)) as db, db:
        yield db


def init(path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with _connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")  # kept in the file: the status view reads while workers write
        db.execute(_SCHEMA)


def save(path: str, job_id: str, rows: Iterable[tuple[str, str, str]]) -> None:
    """Write (custom_id, text, error) rows of one job in one transaction."""
    with _connect(path) as db:
        db.executemany(_UPSERT, [(job_id, *row) for row in rows])


def answers(path: str, job_id: str) -> list[dict[str, str]]:
    with _connect(path) as db:
        cursor = db.execute("SELECT custom_id, text, error FROM answers WHERE job_id = ? ORDER BY custom_id", (job_id,))
        return [{"custom_id": c, "text": t, "error": e} for c, t, e in cursor]

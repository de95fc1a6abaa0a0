"""Embedding jobs on a real `celery worker` process and the real Redis, against the emulator over real HTTP: created
here, run by the worker, their vectors, usage and cost read back by id."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from batchline import BatchStatus, batch_create_embeddings_sync, batch_results_sync, batch_wait_sync, worker
from batchline.emulator import Emulator
from batchline.emulator.answers_common import embedding, tokens

from .conftest import RealSetup, WorkerProcess, make_real_setup
from .openai_anthropic_helpers import provider_env

pytestmark = pytest.mark.redis

TEXTS = [(f"passage-{i:02d}", f"Passage number {i} of the handbook, on topic {i % 4}") for i in range(30)]


@pytest.fixture
def embedding_worker(redis_url: str, emulator: Emulator, tmp_path: Path) -> Iterator[tuple[RealSetup, WorkerProcess]]:
    setup = make_real_setup(redis_url, max_poll_interval=1)
    gemini = {"GEMINI_API_KEY": "gemini-test-key", "GOOGLE_GEMINI_BASE_URL": emulator.gemini_base_url}
    process = WorkerProcess({**setup.env, **provider_env(emulator), **gemini}, tmp_path / "worker.log")
    worker.use_app(setup.app)
    try:
        yield setup, process
    finally:
        worker._current = None
        process.stop()
        setup.cleanup()


@pytest.mark.parametrize(
    ("model", "dimensions", "seed"),
    [("openai:text-embedding-3-small", 16, ""), ("google:gemini-embedding-001", 16, "RETRIEVAL_DOCUMENT\x1f\x1f")],
)
def test_an_embedding_job_runs_on_a_real_worker(
    embedding_worker: tuple[RealSetup, WorkerProcess], emulator: Emulator, model: str, dimensions: int, seed: str
) -> None:
    _, process = embedding_worker
    created = batch_create_embeddings_sync(model, TEXTS, settings={"dimensions": dimensions}, poll_interval=0.2)
    final = batch_wait_sync(created.id)
    assert final.status is BatchStatus.COMPLETED and final.completed_count == len(TEXTS)

    results = batch_results_sync(created.id)
    assert [r.custom_id for r in results] == [cid for cid, _ in TEXTS]
    assert [r.embedding for r in results] == [embedding(seed + text, dimensions) for _, text in TEXTS]
    assert final.usage.input_tokens == sum(tokens(text) for _, text in TEXTS)
    assert final.cost is not None and final.cost > 0
    stats = emulator.stats()
    assert sum(stats[p]["batches_created"] for p in ("openai", "gemini")) == 1  # created once

    log = process.output()
    assert "Task batchline.fetch[" in log
    assert "Passage number" not in log  # no text reaches a task message or the worker's log

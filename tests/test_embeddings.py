"""Embeddings through the typed API, on the embedded default against the emulator over real HTTP: OpenAI's
`/v1/embeddings` batches and Gemini's `asyncBatchEmbedContent`, the vectors in input order under their custom_ids,
usage and cost, status/wait/cancel/results as for any job, and bad input refused before anything is stored or sent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price

from batchline import (
    BatchInputError,
    BatchStatus,
    EmbeddingRequest,
    batch_cancel_sync,
    batch_create_embeddings,
    batch_create_embeddings_sync,
    batch_list_sync,
    batch_results_sync,
    batch_status_sync,
    batch_wait_sync,
    embed_batch,
    embed_batch_sync,
    runtime,
    worker,
)
from batchline.config import Settings
from batchline.costs import job_cost
from batchline.embed_jobs import embedding_result
from batchline.embeddings import MAX_INPUTS
from batchline.emulator import Emulator
from batchline.emulator.answers_common import embedding, tokens
from batchline.providers.gemini import GeminiProvider
from batchline.providers.openai import OpenAIProvider
from batchline.records import JobRecord
from batchline.types import BatchError

from .conftest import set_embedded_settings
from .openai_anthropic_helpers import fresh_runtime, provider_env, uploaded_bodies
from .waiting import wait_for

OPENAI = "openai:text-embedding-3-small"
GEMINI = "google:gemini-embedding-001"
TEXTS = {"doc-b": "The second text", "doc-a": "A first, longer text about embeddings", "doc-c": "third"}
BATCH = {"processing": "batch"}


@pytest.fixture
def providers(emulator: Emulator, embedded: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """This process's workers (the embedded default's) pointed at the emulator, for OpenAI and Gemini."""
    for name, value in provider_env(emulator).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-test-key")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emulator.gemini_base_url)
    fresh_runtime()
    yield emulator
    fresh_runtime()


def batch_price(provider_id: str, model: str, input_tokens: int) -> Decimal:
    return calc_price(Usage(input_tokens=input_tokens), model, provider_id=provider_id, price_context=BATCH).total_price


def stored_jobs() -> int:
    return len(runtime.runtime_for(worker.app).store.job_ids(10_000))


# -- OpenAI ------------------------------------------------------------------------------------------------------------
def test_openai_vectors_come_back_in_input_order_with_usage_and_cost(providers: Emulator, embedded: Settings) -> None:
    set_embedded_settings(replace(embedded, cleanup_files=False))  # keep the uploaded input file to look at
    result = embed_batch_sync(OPENAI, list(TEXTS.items()), settings={"dimensions": 8}, poll_interval=0.1)

    assert result.batch.status is BatchStatus.COMPLETED
    assert [r.custom_id for r in result.results] == list(TEXTS)  # input order, not the output file's
    assert result.embeddings == [embedding(text, 8) for text in TEXTS.values()]  # each text's own vector
    assert result["doc-a"] == embedding(TEXTS["doc-a"], 8)
    used = sum(tokens(text) for text in TEXTS.values())
    assert (result.usage.input_tokens, result.usage.output_tokens) == (used, 0)
    assert result.cost == batch_price("openai", "text-embedding-3-small", used) and result.cost > 0

    # One `/v1/embeddings` line per input, as the Batch API takes them.
    sent = uploaded_bodies(providers)
    assert sent == {
        cid: {"model": "text-embedding-3-small", "input": text, "encoding_format": "float", "dimensions": 8}
        for cid, text in TEXTS.items()
    }
    assert providers.stats()["openai"]["batches_created"] == 1


def test_plain_texts_get_their_position_as_custom_id_and_parts_keep_input_order(
    providers: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(OpenAIProvider, "max_requests", 3)  # 8 inputs: three provider batches
    texts = [f"text number {i}" for i in range(8)]
    result = asyncio.run(embed_batch(OPENAI, texts, poll_interval=0.1))
    assert len(result.batch.provider_batches) == 3 and providers.stats()["openai"]["batches_created"] == 3
    assert [r.custom_id for r in result.results] == [str(i) for i in range(8)]
    assert result.embeddings == [embedding(text, 1536) for text in texts]  # the model's full length by default


# -- Gemini ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["inline", "file"])
def test_gemini_vectors_come_back_in_input_order_with_usage_and_cost(
    providers: Emulator, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if mode == "file":
        monkeypatch.setattr(GeminiProvider, "inline_limit", 1)  # every part as an uploaded JSONL file
    requests = [EmbeddingRequest(cid, text) for cid, text in TEXTS.items()]
    result = embed_batch_sync(GEMINI, requests, input_type="query", settings={"dimensions": 6}, poll_interval=0.1)

    assert result.batch.status is BatchStatus.COMPLETED
    assert [r.custom_id for r in result.results] == list(TEXTS)
    # The emulator's vector follows the task type: the query texts went as RETRIEVAL_QUERY, as pydantic-ai sends them.
    assert result.embeddings == [embedding(f"RETRIEVAL_QUERY\x1f\x1f{text}", 6) for text in TEXTS.values()]
    used = sum(tokens(text) for text in TEXTS.values())
    assert result.usage.input_tokens == used
    assert result.cost == batch_price("google", "gemini-embedding-001", used) and result.cost > 0
    calls = providers.stats()["calls"]
    assert calls["POST /v1beta/models/{model}:asyncBatchEmbedContent"] == 1
    assert "POST /v1beta/models/{model}:batchGenerateContent" not in calls
    assert providers.stats()["files"] == 0, "input and result files are deleted once the vectors are stored"


def test_a_gemini_part_of_many_inputs_goes_as_a_file_so_its_vectors_stream_back(providers: Emulator) -> None:
    """Inline answers come inside the batch's JSON, hundreds of times the size of the texts: past EMBED_INLINE_LIMIT
    bytes of input, the part is uploaded, and its vectors come as a results file read line by line."""
    texts = [(f"t{i:03d}", f"text {i:03d} " + "x" * 90) for i in range(700)]  # about 70 kB of input
    result = embed_batch_sync(GEMINI, texts, settings={"dimensions": 2}, poll_interval=0.1)
    assert providers.stats()["gemini"] == {"batches_created": 1, "files_created": 1, "requests_received": 700}
    assert [r.custom_id for r in result.results] == [cid for cid, _ in texts]
    assert result.embeddings == [embedding(f"RETRIEVAL_DOCUMENT\x1f\x1f{text}", 2) for _, text in texts]


def test_gemini_document_titles_and_task_types_reach_the_provider(providers: Emulator) -> None:
    settings = {"google_task_type": "CLUSTERING", "google_title": "Notes", "dimensions": 4}
    result = embed_batch_sync(GEMINI, ["alpha"], settings=settings, poll_interval=0.1)  # type: ignore[arg-type]
    assert result.embeddings == [embedding("CLUSTERING\x1fNotes\x1falpha", 4)]


def test_a_model_genai_prices_does_not_know_costs_unknown_never_zero(providers: Emulator) -> None:
    result = embed_batch_sync("google:text-embedding-004", ["alpha", "beta"], poll_interval=0.1)
    assert result.batch.status is BatchStatus.COMPLETED and result.usage.input_tokens > 0
    assert result.cost is None
    assert len(result.embeddings[0] or []) == 768


def test_vectors_with_no_reported_tokens_cost_unknown_not_zero() -> None:
    known = JobRecord(model=OPENAI, total=2, created_at=0, succeeded=2, kind="embedding")
    assert job_cost(known) is None  # the provider reported no tokens: not free
    assert job_cost(replace(known, input_tokens=40)) == batch_price("openai", "text-embedding-3-small", 40)


# -- a job like any other ----------------------------------------------------------------------------------------------
def test_status_wait_cancel_and_results_work_as_for_chat_jobs(providers: Emulator) -> None:
    providers.configure(stage_seconds=30)  # the provider takes its time
    batch = asyncio.run(batch_create_embeddings(OPENAI, list(TEXTS.items()), poll_interval=0.1))
    assert batch.status is BatchStatus.IN_PROGRESS and batch.request_count == 3
    assert batch_status_sync(batch.id).status is BatchStatus.IN_PROGRESS
    assert batch.id in [b.id for b in batch_list_sync()]
    assert batch_cancel_sync(batch.id).status in (BatchStatus.CANCELLING, BatchStatus.CANCELLED)
    cancelling = lambda: batch_status_sync(batch.id).provider_batches[0].status == "cancelling"  # noqa: E731
    wait_for(cancelling, "the provider batch to be cancelling")
    providers.advance_clock(60)  # OpenAI takes a stage to cancel
    final = batch_wait_sync(batch.id)
    assert final.status is BatchStatus.CANCELLED
    results = batch_results_sync(batch.id)
    assert [r.custom_id for r in results] == list(TEXTS)
    assert all(r.embedding is None and r.error and r.error.code == "canceled" for r in results)


def test_a_failed_input_carries_the_providers_error_and_the_others_their_vectors(providers: Emulator) -> None:
    providers.fail_requests(["doc-b"], kind="invalid_request", message="input too long")
    batch = batch_wait_sync(batch_create_embeddings_sync(OPENAI, list(TEXTS.items()), poll_interval=0.1))
    assert (batch.completed_count, batch.failed_count) == (2, 1)
    by_id = {r.custom_id: r for r in batch_results_sync(batch)}
    failed = by_id["doc-b"]
    assert not failed.is_successful and failed.error is not None and failed.error.message == "input too long"
    assert by_id["doc-a"].is_successful and by_id["doc-a"].embedding == embedding(TEXTS["doc-a"], 1536)
    picked = batch_results_sync(batch, custom_ids=["doc-c"])  # a callback's chunk
    assert [r.embedding for r in picked] == [embedding("third", 1536)]


# -- bad input ---------------------------------------------------------------------------------------------------------
BAD_INPUTS: list[tuple[str, object, dict[str, object], str]] = [
    (OPENAI, [], {}, "inputs is empty"),
    (OPENAI, "one text", {}, "must be a list"),
    (OPENAI, ["fine", ""], {}, "input '1' is an empty text"),
    (OPENAI, [("a", "fine"), ("b", "   ")], {}, "input 'b' is an empty text"),
    (OPENAI, [("a", 3)], {}, "input 'a' is a int, not a text"),
    (OPENAI, [("a", "x"), ("a", "y")], {}, "custom_id 'a' is used twice"),
    (OPENAI, [("", "x")], {}, "custom_id ''"),
    (OPENAI, ["x"] * (MAX_INPUTS + 1), {}, f"more than one job takes ({MAX_INPUTS:,})"),
    ("openai:gpt-4o-mini", ["x"], {}, "is not an embedding model"),
    ("anthropic:claude-haiku-4-5", ["x"], {}, "'anthropic' has none"),
    ("test", ["x"], {}, "'test' has none"),
    ("openai:", ["x"], {}, "names no model"),
    (OPENAI, ["x"], {"settings": {"dimensions": 0}}, "settings dimensions must be a whole number from 1"),
    (OPENAI, ["x"], {"settings": {"google_task_type": "CLUSTERING"}}, "cannot be honoured in a openai"),
    (OPENAI, ["x"], {"settings": {"truncate": True}}, "cannot truncate"),
    (GEMINI, ["x"], {"settings": {"google_task": "clustering"}}, "only gemini-embedding-2 takes one"),
    ("google:gemini-embedding-2", ["x"], {"settings": {"google_task_type": "X"}}, "takes google_task instead"),
    (GEMINI, ["x"], {"input_type": "passage"}, "input_type must be 'query' or 'document'"),
    (OPENAI, ["x"], {"poll_interval": 0}, "poll_interval must be"),
]


@pytest.mark.parametrize(("model", "inputs", "options", "message"), BAD_INPUTS)
def test_bad_input_is_refused_before_anything_is_stored_or_sent(
    providers: Emulator, model: str, inputs: object, options: dict[str, object], message: str
) -> None:
    before = stored_jobs()
    with pytest.raises(BatchInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        batch_create_embeddings_sync(model, inputs, **options)  # type: ignore[arg-type]
    assert stored_jobs() == before
    assert providers.stats()["calls"] == {}


# -- reading stored answers --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        b'{"data": [{"embedding": [0.1, "0.2"]}]}',
        b'{"data": [{"embedding": [0.1, null]}]}',
        b'{"data": [{"embedding": []}]}',
        b'{"data": [{"embedding": [1e400]}]}',
        b'{"data": [{"embedding": "AAAA"}]}',
        b'{"data": []}',
        b"[1, 2]",
        b"not json",
    ],
)
def test_an_answer_without_a_readable_vector_is_an_error_not_a_guess(body: bytes) -> None:
    result = embedding_result("openai", "x", "succeeded", body)
    assert result.embedding is None and result.error is not None and result.error.code == "no_embedding"


def test_stored_errors_keep_the_providers_code_and_message() -> None:
    openai_error = b'{"status_code": 400, "body": {"error": {"message": "too long", "code": "context_length"}}}'
    assert embedding_result("openai", "x", "errored", openai_error).error == BatchError("context_length", "too long")
    gemini_error = b'{"code": 3, "message": "contents must not be empty"}'
    expected = BatchError("INVALID_ARGUMENT", "contents must not be empty")
    assert embedding_result("gemini", "x", "errored", gemini_error).error == expected
    assert embedding_result("gemini", "x", "expired", b"").error == BatchError(
        "expired", "The batch expired before this input was embedded."
    )
    assert embedding_result("gemini", "x", "succeeded", b'{"embedding": {"values": [1, 0.5]}}').embedding == [1, 0.5]

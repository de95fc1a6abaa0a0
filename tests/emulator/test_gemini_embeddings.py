"""Gemini's batch embeddings (`asyncBatchEmbedContent`) as the official google-genai SDK drives them, unchanged,
against the emulator: `client.batches.create_embeddings` inline and from a file, get, list and cancel."""

from __future__ import annotations

import io
import json
import warnings

import httpx2
import pytest
from google import genai
from google.genai.types import JobState

from batchline.emulator import Emulator
from batchline.emulator.answers_common import embedding, tokens

TEXTS = ["What is a vector?", "Embeddings map text to numbers.", "third"]


@pytest.fixture(autouse=True)
def experimental_is_fine() -> None:
    """google-genai marks `create_embeddings` experimental with a warning each call."""
    warnings.filterwarnings("ignore", message=r"batches\.create_embeddings\(\) is experimental")


def _upload(client: genai.Client, texts: list[str]) -> str:
    lines = [
        json.dumps({"key": f"k{i}", "request": {"content": {"parts": [{"text": t}]}}}) for i, t in enumerate(texts)
    ]
    file = client.files.upload(
        file=io.BytesIO("\n".join(lines).encode()), config={"mime_type": "application/jsonl", "display_name": "in"}
    )
    assert file.name is not None
    return file.name


def test_inline_embeddings_come_back_in_input_order(gemini_client: genai.Client, emulator: Emulator) -> None:
    src = {"inlined_requests": {"contents": TEXTS, "config": {"output_dimensionality": 8, "task_type": "CLUSTERING"}}}
    job = gemini_client.batches.create_embeddings(model="gemini-embedding-001", src=src)  # type: ignore[arg-type]
    assert job.name and job.name.startswith("batches/") and job.state == JobState.JOB_STATE_PENDING
    assert job.model == "models/gemini-embedding-001"
    job = gemini_client.batches.get(name=job.name)
    assert job.state == JobState.JOB_STATE_SUCCEEDED and job.dest is not None
    assert job.dest.inlined_responses is None  # the SDK reads them as embedding responses, not generated content
    answers = job.dest.inlined_embed_content_responses or []
    assert [a.response.embedding.values for a in answers if a.response and a.response.embedding] == [
        embedding(f"CLUSTERING\x1f\x1f{text}", 8) for text in TEXTS
    ]
    assert [a.response.token_count for a in answers if a.response] == [tokens(text) for text in TEXTS]
    calls = emulator.stats()["calls"]
    assert calls["POST /v1beta/models/{model}:asyncBatchEmbedContent"] == 1

    raw = httpx2.get(f"{emulator.url}/v1beta/{job.name}", headers={"x-goog-api-key": "k"}).json()
    assert raw["metadata"]["@type"].endswith(".EmbedContentBatch")
    assert raw["response"]["@type"].endswith(".EmbedContentBatchOutput")
    assert raw["metadata"]["batchStats"] == {"requestCount": "3", "successfulRequestCount": "3"}


def test_file_embeddings_are_matched_by_key(gemini_client: genai.Client, emulator: Emulator) -> None:
    name = _upload(gemini_client, TEXTS * 4)
    job = gemini_client.batches.create_embeddings(model="gemini-embedding-001", src={"file_name": name})
    job = gemini_client.batches.get(name=job.name)  # type: ignore[arg-type]
    assert job.state == JobState.JOB_STATE_SUCCEEDED and job.dest is not None and job.dest.file_name
    lines = [json.loads(line) for line in gemini_client.files.download(file=job.dest.file_name).splitlines()]
    assert [line["key"] for line in lines] != [f"k{i}" for i in range(12)], "results come in any order"
    for line in lines:
        text = TEXTS[int(line["key"][1:]) % 3]
        assert line["response"] == {"embedding": {"values": embedding(text, 3072)}, "tokenCount": tokens(text)}


def test_list_cancel_and_an_input_with_no_text(gemini_client: genai.Client, emulator: Emulator) -> None:
    emulator.configure(stage_seconds=100)
    src = {"inlined_requests": {"contents": TEXTS}}
    job = gemini_client.batches.create_embeddings(model="gemini-embedding-001", src=src)  # type: ignore[arg-type]
    assert [listed.name for listed in gemini_client.batches.list()] == [job.name]
    gemini_client.batches.cancel(name=job.name)  # type: ignore[arg-type]
    assert gemini_client.batches.get(name=job.name).state == JobState.JOB_STATE_CANCELLED  # type: ignore[arg-type]

    emulator.configure(stage_seconds=0)
    body = {"batch": {"inputConfig": {"requests": {"requests": [{"request": {"content": {"parts": []}}}]}}}}
    created = httpx2.post(
        f"{emulator.url}/v1beta/models/gemini-embedding-001:asyncBatchEmbedContent",
        json=body,
        headers={"x-goog-api-key": "k"},
    ).json()
    done = httpx2.get(f"{emulator.url}/v1beta/{created['name']}", headers={"x-goog-api-key": "k"}).json()
    answers = done["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    assert len(answers) == 1 and "response" not in answers[0] and answers[0]["error"]["code"] == 3

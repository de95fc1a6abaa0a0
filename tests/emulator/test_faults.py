"""HTTP faults on demand, as each provider's SDK sees them."""

from __future__ import annotations

import time

import anthropic
import httpx2
import openai
import pytest
from emulator_helpers import anthropic_requests, openai_lines
from google import genai
from google.genai import errors

from batchline.emulator import Emulator, Faults, HttpFault


def test_rate_limit_with_retry_after_is_retried(emulator: Emulator) -> None:
    emulator.add_fault(
        HttpFault(kind="status", status=429, retry_after=0.01, method="POST", path="^/v1/batches$", times=1)
    )
    with openai.OpenAI(base_url=emulator.openai_base_url, api_key="k", max_retries=2) as client:
        file = client.files.create(file=("in.jsonl", openai_lines(2)), purpose="batch")
        batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert batch.status == "validating"
    stats = emulator.stats()
    assert stats["calls"]["POST /v1/batches"] == 2, "one refused attempt, one retry"
    assert stats["openai"]["batches_created"] == 1, "the paid batch was created once"


def test_rate_limit_seen_by_client(openai_client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.add_fault(HttpFault(status=429, retry_after=7, provider="openai"))
    with pytest.raises(openai.RateLimitError) as raised:
        openai_client.batches.list()
    assert raised.value.response.headers["retry-after"] == "7"
    assert raised.value.code == "rate_limit_exceeded"


def test_server_errors_in_each_shape(
    openai_client: openai.OpenAI,
    anthropic_client: anthropic.Anthropic,
    gemini_client: genai.Client,
    emulator: Emulator,
) -> None:
    emulator.set_faults(
        Faults(
            http=[
                HttpFault(status=500, provider="anthropic", times=1),
                HttpFault(status=503, provider="gemini", times=1),
                HttpFault(status=500, provider="openai", path="/v1/files", times=1),
            ]
        )
    )
    with pytest.raises(anthropic.InternalServerError) as anthropic_error:
        anthropic_client.messages.batches.list()
    assert isinstance(anthropic_error.value.body, dict) and anthropic_error.value.body["error"]["type"] == "api_error"
    with pytest.raises(errors.ServerError) as gemini_error:
        list(gemini_client.batches.list())
    assert gemini_error.value.code == 503 and gemini_error.value.status == "UNAVAILABLE"
    with pytest.raises(openai.InternalServerError):
        openai_client.files.list()
    # Each fault was used up: the next calls go through.
    assert list(anthropic_client.messages.batches.list()) == []
    assert list(gemini_client.batches.list()) == []
    assert list(openai_client.files.list()) == []


def test_dropped_connection(emulator: Emulator) -> None:
    emulator.add_fault(HttpFault(kind="drop", provider="openai", path="^/v1/batches$", times=1))
    with openai.OpenAI(base_url=emulator.openai_base_url, api_key="k", max_retries=0) as client:
        with pytest.raises(openai.APIConnectionError):
            client.batches.list()
        assert client.batches.list().data == []
    emulator.add_fault(HttpFault(kind="drop", provider="anthropic", times=1))
    with anthropic.Anthropic(base_url=emulator.anthropic_base_url, api_key="k", max_retries=1) as client:
        client.messages.batches.create(requests=anthropic_requests(1))  # type: ignore[arg-type]
    assert emulator.stats()["calls"]["POST /v1/messages/batches"] == 2
    assert emulator.stats()["anthropic"]["batches_created"] == 1


def test_slow_answer(emulator: Emulator) -> None:
    emulator.add_fault(HttpFault(kind="slow", delay=0.4, provider="openai"))
    with (
        openai.OpenAI(base_url=emulator.openai_base_url, api_key="k", max_retries=0, timeout=0.1) as client,
        pytest.raises(openai.APITimeoutError),
    ):
        client.batches.list()
    with openai.OpenAI(base_url=emulator.openai_base_url, api_key="k", max_retries=0, timeout=5) as client:
        started = time.monotonic()
        client.batches.list()
        assert time.monotonic() - started >= 0.4


def test_truncated_download(openai_client: openai.OpenAI, emulator: Emulator) -> None:
    file = openai_client.files.create(file=("in.jsonl", openai_lines(50)), purpose="batch")
    batch = openai_client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    output_id = openai_client.batches.retrieve(batch.id).output_file_id
    assert output_id
    full = openai_client.files.content(output_id).content
    emulator.add_fault(HttpFault(kind="truncate", fraction=0.5, path="/content$", times=2))
    url = f"{emulator.openai_base_url}/files/{output_id}/content"
    received = b""
    with httpx2.stream("GET", url, headers={"authorization": "Bearer k"}) as answer:
        assert int(answer.headers["content-length"]) == len(full)
        with pytest.raises(httpx2.RemoteProtocolError):
            for chunk in answer.iter_raw():
                received += chunk
    assert 0 < len(received) < len(full) and full.startswith(received)
    with pytest.raises((openai.APIConnectionError, httpx2.RemoteProtocolError)):
        openai_client.files.content(output_id)
    assert openai_client.files.content(output_id).content == full, "the fault was used up"


def test_truncated_results_anthropic_and_gemini(
    anthropic_client: anthropic.Anthropic, gemini_client: genai.Client, emulator: Emulator
) -> None:
    batch = anthropic_client.messages.batches.create(requests=anthropic_requests(20))  # type: ignore[arg-type]
    anthropic_client.messages.batches.retrieve(batch.id)
    emulator.add_fault(HttpFault(kind="truncate", provider="anthropic", path="/results$", times=1))
    with pytest.raises((anthropic.APIConnectionError, httpx2.RemoteProtocolError)):
        list(anthropic_client.messages.batches.results(batch.id))
    assert len(list(anthropic_client.messages.batches.results(batch.id))) == 20

    job = gemini_client.batches.create(
        model="gemini-2.5-flash",
        src=[  # type: ignore[arg-type]
            {"contents": [{"parts": [{"text": "x"}], "role": "user"}]}
        ],
    )
    assert job.name
    raw = httpx2.get(f"{emulator.url}/v1beta/{job.name}", headers={"x-goog-api-key": "k"})
    assert raw.status_code == 200
    emulator.add_fault(HttpFault(kind="truncate", provider="gemini", path=":download$", times=1))
    upload = gemini_client.files.upload(file=__file__, config={"mime_type": "text/plain"})
    assert upload.name
    with pytest.raises(httpx2.RemoteProtocolError):
        httpx2.get(f"{emulator.url}/v1beta/{upload.name}:download", params={"alt": "media", "key": "k"})


def test_faults_round_trip_and_reset(emulator: Emulator) -> None:
    faults = Faults(http=[HttpFault(kind="slow", delay=0.01, method="GET", path="x", times=3)])
    emulator.set_faults(faults)
    assert emulator.faults() == faults
    emulator.reset()
    assert emulator.faults() == Faults() and emulator.stats()["calls"] == {}

"""The emulator's objects against real recorded provider payloads: same keys, same types, same nesting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
from emulator_helpers import anthropic_requests, openai_lines
from google import genai

from batchline.emulator import BatchFault, Emulator

RECORDED = Path(__file__).resolve().parent.parent / "fixtures" / "recorded"  # tests/fixtures/recorded/README.md


def recorded(name: str) -> Any:
    text = (RECORDED / name).read_text()
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def assert_same_shape(real: Any, ours: Any, path: str = "$", extra: frozenset[str] = frozenset()) -> None:
    """`ours` has every key of `real`, with values of the same JSON type, recursively; other keys only from `extra`."""
    if isinstance(real, dict):
        assert isinstance(ours, dict), f"{path}: expected an object, got {ours!r}"
        missing = set(real) - set(ours)
        assert not missing, f"{path}: missing keys {sorted(missing)}"
        unexpected = set(ours) - set(real) - extra
        assert not unexpected, f"{path}: unexpected keys {sorted(unexpected)}"
        for key, value in real.items():
            assert_same_shape(value, ours[key], f"{path}.{key}", extra)
    elif isinstance(real, list):
        assert isinstance(ours, list), f"{path}: expected a list, got {ours!r}"
        if real and ours:
            assert_same_shape(real[0], ours[0], f"{path}[0]", extra)
    elif isinstance(real, bool) or real is None:
        assert ours is real or type(ours) is type(real), f"{path}: expected {real!r}, got {ours!r}"
    elif isinstance(real, (int, float)):
        assert isinstance(ours, (int, float)) and not isinstance(ours, bool), f"{path}: expected a number, got {ours!r}"
        assert isinstance(ours, int) == isinstance(real, int), f"{path}: expected {type(real).__name__}"
    else:
        assert type(ours) is type(real), f"{path}: expected {type(real).__name__}, got {ours!r}"


def _raw(emulator: Emulator, path: str, **headers: str) -> Any:
    answer = httpx2.get(
        emulator.url + path, headers={"authorization": "Bearer k", "x-api-key": "k", "x-goog-api-key": "k", **headers}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_openai_batch_sequence_and_files(openai_client: openai.OpenAI, emulator: Emulator) -> None:
    sequence = [step["response"] for step in recorded("openai/batch_status_sequence.json")]
    emulator.configure(stage_seconds=10)
    raw_file = openai_client.files.with_raw_response.create(file=("in.jsonl", openai_lines(3)), purpose="batch")
    assert_same_shape(
        recorded("openai/file_object_upload_response.json"),
        raw_file.http_response.json(),
        extra=frozenset({"expires_at"}),
    )
    file_id = raw_file.parse().id
    created = openai_client.batches.with_raw_response.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"request_file": "x"}
    ).http_response.json()
    models = frozenset({"model"})
    assert_same_shape(sequence[0], created, extra=models)
    emulator.advance_clock(15)
    assert_same_shape(sequence[2], _raw(emulator, f"/v1/batches/{created['id']}"), extra=models)
    emulator.advance_clock(10)
    assert_same_shape(sequence[3], _raw(emulator, f"/v1/batches/{created['id']}"), extra=models)
    emulator.advance_clock(10)
    done = _raw(emulator, f"/v1/batches/{created['id']}")
    assert_same_shape(sequence[4], done, extra=models)
    output = [json.loads(line) for line in openai_client.files.content(done["output_file_id"]).text.splitlines()]
    real_output = recorded("openai/batch_output.jsonl")
    assert_same_shape(real_output[0], output[0], extra=frozenset({"annotations"}))

    cancel = openai_client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"request_file": "x"}
    )
    answer = httpx2.post(
        f"{emulator.openai_base_url}/batches/{cancel.id}/cancel", headers={"authorization": "Bearer k"}
    )
    assert_same_shape(recorded("openai/batch_cancel_response.json"), answer.json(), extra=models)
    assert answer.json()["request_counts"] == {"total": 0, "completed": 0, "failed": 0}


def test_openai_expired_error_lines(openai_client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.add_fault(BatchFault(outcome="expire", done_fraction=0))
    file = openai_client.files.create(file=("in.jsonl", openai_lines(2)), purpose="batch")
    batch = openai_client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    error_file = openai_client.batches.retrieve(batch.id).error_file_id
    assert error_file
    ours = [json.loads(line) for line in openai_client.files.content(error_file).text.splitlines()]
    for real, line in zip(recorded("openai/error_file_batch_expired_DOCS_EXAMPLE.jsonl"), ours, strict=True):
        assert_same_shape(real, line)
        assert line["error"] == real["error"]


def test_anthropic_batches_and_results(anthropic_client: anthropic.Anthropic, emulator: Emulator) -> None:
    sequence = [step["response"] for step in recorded("anthropic/message_batch_status_sequence.json")]
    created = anthropic_client.messages.batches.with_raw_response.create(
        requests=recorded("anthropic/batch_create_request.json")["requests"]
    ).http_response.json()
    assert_same_shape(sequence[0], created)
    ended = _raw(emulator, f"/v1/messages/batches/{created['id']}")
    assert_same_shape(sequence[1], ended)
    results = [
        json.loads(line) for line in httpx2.get(ended["results_url"], headers={"x-api-key": "k"}).text.splitlines()
    ]
    assert_same_shape(recorded("anthropic/results_succeeded.jsonl")[0], results[0])

    emulator.fail_requests(["a0"], kind="billing")
    batch = anthropic_client.messages.batches.create(requests=anthropic_requests(2))  # type: ignore[arg-type]
    cancel = httpx2.post(f"{emulator.url}/v1/messages/batches/{batch.id}/cancel", headers={"x-api-key": "k"}).json()
    assert_same_shape(recorded("anthropic/message_batch_cancel_response.json"), cancel)
    batch = anthropic_client.messages.batches.create(requests=anthropic_requests(2))  # type: ignore[arg-type]
    url = _raw(emulator, f"/v1/messages/batches/{batch.id}")["results_url"]
    lines = {
        json.loads(line)["custom_id"]: json.loads(line)
        for line in httpx2.get(url, headers={"x-api-key": "k"}).text.splitlines()
    }
    assert_same_shape(recorded("anthropic/results_errored_credit_balance.jsonl")[0], lines["a0"])


def test_gemini_operations(gemini_client: genai.Client, emulator: Emulator) -> None:
    src = [{"contents": [{"parts": [{"text": t}], "role": "user"}]} for t in ("France", "Japan", "Brazil")]
    emulator.configure(stage_seconds=10)
    job = gemini_client.batches.create(model="gemini-2.5-flash-lite", src=src, config={"display_name": "capitals"})  # type: ignore[arg-type]
    pending = _raw(emulator, f"/v1beta/{job.name}")
    assert_same_shape(recorded("gemini/batch_pending.json"), pending)
    assert pending["metadata"]["@type"] == recorded("gemini/batch_pending.json")["metadata"]["@type"]
    emulator.advance_clock(20)
    done = _raw(emulator, f"/v1beta/{job.name}")
    assert_same_shape(recorded("gemini/batch_succeeded_inlined.json"), done, extra=frozenset({"output"}))
    assert done["metadata"]["output"]["inlinedResponses"] == done["response"]["inlinedResponses"]

"""Starting the emulator, its CLI arguments, its stats view, and batches at the providers' full size."""

from __future__ import annotations

import argparse
import json

import httpx2
import openai
import pytest
from emulator_helpers import openai_lines

from batchline.emulator import EmulatorConfig, add_arguments, config_from_args, running
from batchline.emulator.schema import example


def test_running_handle_and_stats() -> None:
    with running(EmulatorConfig(response_template="hello {custom_id}")) as emulator:
        assert emulator.url.startswith("http://127.0.0.1:") and not emulator.url.endswith("/")
        assert emulator.openai_base_url == emulator.url + "/v1"
        assert emulator.anthropic_base_url == emulator.gemini_base_url == emulator.url
        assert httpx2.get(emulator.url + "/_emulator/health").json() == {"ok": True}
        with openai.OpenAI(base_url=emulator.openai_base_url, api_key="k") as client:
            file = client.files.create(file=("in.jsonl", openai_lines(1)), purpose="batch")
            client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
            client.batches.list()
        over_http = httpx2.get(emulator.url + "/_emulator/stats").json()
        assert over_http == emulator.stats()
        assert over_http["openai"] == {"batches_created": 1, "files_created": 1, "requests_received": 1}
        assert over_http["calls"] == {"POST /v1/files": 1, "POST /v1/batches": 1, "GET /v1/batches": 1}
        assert emulator.config().response_template == "hello {custom_id}"
    try:
        httpx2.get(emulator.url + "/_emulator/health", timeout=1)
    except httpx2.TransportError:
        pass
    else:
        raise AssertionError("the emulator still answers after the context manager exited")


def test_cli_arguments() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--port", "9000", "--stage-seconds", "30", "--response-template", "hi {custom_id}"])
    assert (args.host, args.port) == ("127.0.0.1", 9000)
    config = config_from_args(args)
    assert config.stage_seconds == 30 and config.response_template == "hi {custom_id}"
    assert config_from_args(parser.parse_args([])).stage_seconds == 0


@pytest.mark.slow
def test_full_size_openai_batch_streams() -> None:
    with running() as server, openai.OpenAI(base_url=server.openai_base_url, api_key="k", timeout=120) as client:
        file = client.files.create(file=("in.jsonl", openai_lines(50_000)), purpose="batch")
        batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
        done = client.batches.retrieve(batch.id)
        assert done.request_counts is not None and done.request_counts.completed == 50_000
        assert done.output_file_id
        count = 0
        with client.files.with_streaming_response.content(done.output_file_id) as answer:
            assert "content-length" not in answer.headers, "generated lazily, streamed in chunks"
            for line in answer.iter_lines():
                if line:
                    count += 1
        assert count == 50_000


def test_schema_examples() -> None:
    schema = {
        "type": "object",
        "$defs": {"Color": {"enum": ["red", "green"]}},
        "properties": {
            "name": {"type": "string", "minLength": 20},
            "age": {"type": "integer", "minimum": 18, "maximum": 30},
            "ratio": {"type": "number", "exclusiveMaximum": 1},
            "ok": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "color": {"$ref": "#/$defs/Color"},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "integer"}]},
            "when": {"type": ["string", "null"], "format": "date-time"},
            "nested": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]},
            "optional": {"type": "string"},
        },
        "required": ["name", "age", "ratio", "ok", "tags", "color", "maybe", "when", "nested"],
    }
    value = example(schema)
    assert set(value) == set(schema["required"])  # type: ignore[arg-type]
    assert len(value["name"]) >= 20 and 18 <= value["age"] <= 30 and value["ratio"] < 1
    assert value["ok"] is True and len(value["tags"]) == 2 and value["color"] == "red"
    assert isinstance(value["maybe"], int) and value["when"] == "2025-01-01T00:00:00Z" and value["nested"] == {"x": 1.5}
    gemini = {"type": "OBJECT", "properties": {"n": {"type": "INTEGER", "nullable": True}}, "required": ["n"]}
    assert json.dumps(example(gemini)) == '{"n": 1}'

"""Build the zstd dictionary that stored result bodies are compressed with (see `batchline/compact.py`).

    uv run python scripts/build_result_dictionary.py          # writes batchline/dictionaries/results-1.zdict
    uv run python scripts/build_result_dictionary.py --check  # exit 1 if the shipped file differs from a fresh build

The dictionary is raw content: the bodies batchline stores for the recorded provider payloads in
`tests/fixtures/recorded/` (OpenAI chat completions and error lines, Anthropic message results, Gemini inline and
Vertex results), plus one OpenAI Responses body as the emulator makes it (no Responses payload is recorded), each with
its free text (answer text, thinking, signatures) emptied. So it holds the answers' shapes (keys, nesting, the fixed
values), never an answer's words: what it saves on a real answer is the JSON around the text.

zstd's trainer wants thousands of samples, and there are a dozen: a raw-content dictionary of the shapes measured as
well (within 1% on these payloads), and one dictionary for every provider and endpoint measured within 1% of one per
provider, so batchline ships one. A dictionary, once shipped, is never changed: a new one gets a new number in
`compact.DICTIONARIES` and the build writes that file.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "tests" / "fixtures" / "recorded"
OUT = ROOT / "batchline" / "dictionaries" / "results-1.zdict"
FREE_TEXT = {"text", "thinking", "signature", "content", "data"}
"""Keys whose string values are an answer's own words (or opaque blobs): emptied."""


def recorded_bodies() -> Iterator[bytes]:
    """The bodies batchline stores for every recorded result line, as its adapters cut them."""
    from batchline.providers.anthropic import wire as anthropic
    from batchline.providers.gemini import wire as gemini
    from batchline.providers.openai import wire as openai

    def lines(name: str) -> Iterator[bytes]:
        yield from (line for line in (RECORDED / name).read_bytes().splitlines() if line.strip())

    for name in ("openai/batch_output.jsonl", "openai/error_file_batch_expired_DOCS_EXAMPLE.jsonl"):
        yield from (openai.result_of(orjson.loads(line))[2] for line in lines(name))
    for name in ("results_succeeded.jsonl", "results_succeeded_with_thinking.jsonl"):
        yield from (anthropic.result_of(orjson.loads(line))[2] for line in lines(f"anthropic/{name}"))
    yield from (
        anthropic.result_of(orjson.loads(line))[2] for line in lines("anthropic/results_errored_credit_balance.jsonl")
    )
    yield from (gemini.result_line(line)[2] for line in lines("gemini/vertex_batch_prediction_output.jsonl"))
    operation = orjson.loads((RECORDED / "gemini" / "batch_succeeded_inlined.json").read_bytes())
    items = gemini.inline_responses(operation) or []
    yield from (result[2] for result in gemini.inline_results(items, None, by_index=True))


def responses_body() -> bytes:
    """One OpenAI Responses body as the emulator answers it (a text answer with usage)."""
    from batchline.emulator.answers_common import AnswerContext
    from batchline.emulator.answers_openai import response

    ctx = AnswerContext(batch_id="batch_0", created=1_760_000_000, template="")
    return orjson.dumps(response({"model": "gpt-4o-mini", "input": "Hello"}, "0", ctx))


def emptied(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "" if k in FREE_TEXT and isinstance(v, str) else emptied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [emptied(v) for v in value]
    return value


def build() -> bytes:
    shapes: list[bytes] = []
    for body in [*recorded_bodies(), responses_body()]:
        if body:
            shape = orjson.dumps(emptied(orjson.loads(body)))
            if shape not in shapes:
                shapes.append(shape)
    # zstd reaches nearer bytes more cheaply: the most common shapes (OpenAI's) go last.
    shapes.sort(key=lambda shape: shape.startswith((b'{"id":"chatcmpl', b'{"id":"resp_')))
    return b"\n".join(shapes)


def main() -> int:
    built = build()
    if "--check" in sys.argv[1:]:
        same = OUT.exists() and OUT.read_bytes() == built
        print(f"{OUT.relative_to(ROOT)}: {'as built' if same else 'differs from a fresh build'}")
        return 0 if same else 1
    OUT.write_bytes(built)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(built)} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

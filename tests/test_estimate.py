"""The estimate before sending (`estimate_cost`, `batchline submit --estimate`) and the `max_cost` check at create:
bounds that hold for each provider's bodies, genai-prices' batch prices, "unknown" for a model with no price, and a
job over its budget refused before anything is stored."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic_ai import ImageUrl, ModelRequest, ModelResponse, TextPart, ToolDefinition
from pydantic_ai.messages import SystemPromptPart, UserPromptPart
from pydantic_ai.models import ModelRequestParameters

from batchline import BatchInputError, RawRequest, batch_create_sync, estimate_cost, estimate_cost_sync
from batchline.codec import to_batch_requests
from batchline.config import Settings
from batchline.costs import cost_of
from batchline.estimate import TOOL_PROMPT_TOKENS
from batchline.jobs import encode
from batchline.providers import get_provider
from batchline.records import JobRecord
from batchline.runtime import Store

from .test_cli_jobs import batchline, write_jsonl

SYSTEM = "You answer questions about the solar system for a school magazine, in plain words."
QUESTIONS = [
    "Why is Mars red?",
    "How long does light from the Sun take to reach Neptune, and why does that matter for probes?",
    "Explain, for a reader of twelve, what keeps the rings of Saturn in place.",
]


def requests() -> list[tuple[str, list[ModelRequest]]]:
    return [
        (f"q{i}", [ModelRequest(parts=[SystemPromptPart(SYSTEM), UserPromptPart(question)])])
        for i, question in enumerate(QUESTIONS)
    ]


def words() -> int:
    return sum(len(text.split()) for text in [SYSTEM] * len(QUESTIONS) + QUESTIONS)


def bodies(model: str, items: list[object], **options: object) -> list[bytes]:
    checked = [request for request, _ in to_batch_requests(items, **options)]  # type: ignore[arg-type]
    return [enc.body for enc in encode(get_provider(model), checked)]


@pytest.mark.parametrize("model", ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "google:gemini-2.5-flash"])
def test_input_is_bounded_by_the_words_and_the_bytes_of_each_request(model: str) -> None:
    found = estimate_cost_sync(model, requests())
    sizes = [len(body) for body in bodies(model, requests())]
    assert found.requests == 3
    assert found.input_tokens.lower == words()  # every word of the system prompt and the question, once per request
    assert found.input_tokens.upper == sum(sizes)  # no tools, no images: the bytes as sent
    assert found.input_tokens.typical is not None
    assert found.input_tokens.lower <= found.input_tokens.typical <= found.input_tokens.upper
    assert "bounds without a tokenizer" in found.input_tokens.method and "words" in found.input_tokens.method


def test_output_is_bounded_by_each_requests_own_limit_or_else_the_models() -> None:
    limited = estimate_cost_sync("openai:gpt-4o-mini", requests(), model_settings={"max_tokens": 300})
    assert (limited.output_tokens.lower, limited.output_tokens.upper) == (0, 900)
    assert "the request's own max_tokens (3 of 3)" in limited.output_tokens.method

    unset = estimate_cost_sync("openai:gpt-4o-mini", requests())
    assert unset.output_tokens.upper == 3 * 16_384
    assert "none set: the gpt-4o-mini output limit, 16,384 (3 of 3)" in unset.output_tokens.method
    gemini = estimate_cost_sync("google:gemini-2.5-flash", requests())
    assert gemini.output_tokens.upper == 3 * 65_536
    # A model the table does not hold: its context window from genai-prices, which output can never pass.
    window = estimate_cost_sync("openai:chatgpt-4o-latest", requests())
    assert "its context window (genai-prices)" in window.output_tokens.method
    assert window.output_tokens.upper == 3 * 128_000
    anthropic = estimate_cost_sync("anthropic:claude-haiku-4-5", requests(), model_settings={"max_tokens": 1000})
    assert anthropic.output_tokens.upper == 3000


def test_the_cost_is_the_bounds_at_genai_prices_batch_prices() -> None:
    found = estimate_cost_sync("openai:gpt-4o-mini", requests(), model_settings={"max_tokens": 300})
    sizes = [len(body) for body in bodies("openai:gpt-4o-mini", requests(), settings={"max_tokens": 300})]
    per_request = [len(f"{SYSTEM} {question}".split()) for question in QUESTIONS]
    assert found.cost.lower == cost_of("openai", "gpt-4o-mini", Counter((w, 0) for w in per_request))
    assert found.cost.upper == cost_of("openai", "gpt-4o-mini", Counter((size, 300) for size in sizes))
    assert found.cost.lower is not None and found.cost.upper is not None and 0 < found.cost.lower < found.cost.upper
    # Batch prices: half of gpt-4o-mini's live $0.15 per million input tokens.
    assert found.cost.lower == Decimal("0.075") * found.input_tokens.lower / 1_000_000


def test_tools_add_the_tool_prompt_to_the_upper_bound_and_nothing_to_the_lower() -> None:
    tool = ToolDefinition(
        name="planet_facts",
        description="Look up the mass, radius and orbit of a planet by its name in the almanac.",
        parameters_json_schema={"type": "object", "properties": {"name": {"type": "string"}}},
    )
    params = ModelRequestParameters(function_tools=[tool])
    found = estimate_cost_sync("anthropic:claude-haiku-4-5", requests(), model_request_parameters=params)
    sizes = [len(body) for body in bodies("anthropic:claude-haiku-4-5", requests(), params=params)]
    assert found.input_tokens.upper == sum(sizes) + 3 * TOOL_PROMPT_TOKENS
    assert found.input_tokens.lower == words()  # the tool's description is not counted as prompt text


def test_images_leave_the_input_and_the_cost_without_an_upper_bound() -> None:
    image = ImageUrl(url="https://example.com/mars.png")
    items = [*requests(), ("img", [ModelRequest(parts=[UserPromptPart(["What is on this picture?", image])])])]
    found = estimate_cost_sync("openai:gpt-4o-mini", items, model_settings={"max_tokens": 100})
    assert found.input_tokens.upper is None
    assert "no upper bound: 1 of 4 requests carry images, audio or files" in found.input_tokens.method
    assert found.input_tokens.lower == words() + 5
    assert found.cost.lower is not None and found.cost.lower > 0
    assert found.cost.upper is None and "no upper bound" in found.cost.method


def test_a_model_without_a_price_costs_unknown_never_zero() -> None:
    found = estimate_cost_sync("openai:no-such-model", requests(), model_settings={"max_tokens": 10})
    assert found.cost.lower is None and found.cost.upper is None
    assert found.cost.method == "unknown: genai-prices has no price for openai:no-such-model"
    assert found.input_tokens.upper is not None  # the tokens are still bounded
    assert estimate_cost_sync("test", requests()).cost.lower is None


def test_raw_embeddings_make_no_output_tokens() -> None:
    raw = [
        RawRequest(f"e{i}", {"model": "text-embedding-3-small", "input": f"passage {i} about comets"}, "/v1/embeddings")
        for i in range(4)
    ]
    found = estimate_cost_sync("openai:text-embedding-3-small", raw)
    assert (found.input_tokens.lower, found.output_tokens.upper) == (16, 0)
    assert "embeddings and moderations make no output" in found.output_tokens.method
    assert found.cost.lower is not None and found.cost.lower > 0


def test_earlier_turns_count_and_the_async_twin_gives_the_same() -> None:
    history = [
        ModelRequest(parts=[UserPromptPart("Name the largest moon of Jupiter.")]),
        ModelResponse(parts=[TextPart("Ganymede is the largest moon of Jupiter.")]),
        ModelRequest(parts=[UserPromptPart("How large is it?")]),
    ]
    found = estimate_cost_sync("google:gemini-2.5-flash", [("turns", history)])
    assert found.input_tokens.lower == 6 + 7 + 4
    assert asyncio.run(estimate_cost("google:gemini-2.5-flash", [("turns", history)])) == found


def test_bad_input_is_refused_as_batch_create_refuses_it() -> None:
    with pytest.raises(BatchInputError, match="used twice"):
        estimate_cost_sync("openai:gpt-4o-mini", [*requests(), requests()[0]])
    with pytest.raises(BatchInputError, match="names no model"):
        estimate_cost_sync("openai:", requests())


# -- the budget at create -----------------------------------------------------------------------------------------
def test_a_job_whose_lower_bound_passes_max_cost_is_refused_and_nothing_is_stored(embedded_store: Store) -> None:
    before = embedded_store.job_ids()
    floor = estimate_cost_sync("openai:gpt-4o-mini", requests()).cost.lower
    assert floor is not None
    with pytest.raises(BatchInputError, match=r"costs at least \$.*more than max_cost \$.*nothing was stored or sent"):
        batch_create_sync("openai:gpt-4o-mini", requests(), max_cost=floor / 2)
    with pytest.raises(BatchInputError, match="genai-prices has none for test"):
        batch_create_sync("test", requests(), max_cost=1.0)
    assert embedded_store.job_ids() == before


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "1.00"])
def test_max_cost_must_be_an_amount_above_zero(embedded: Settings, bad: object) -> None:
    with pytest.raises(BatchInputError, match="max_cost must be a number above 0"):
        batch_create_sync("test", requests(), max_cost=bad)  # type: ignore[arg-type]


def test_the_budget_is_kept_on_the_job_and_an_older_record_has_none() -> None:
    older = JobRecord.from_hash({"model": "test", "total": "1", "created_at": "1.0"})
    assert (older.max_cost, older.cancel_reason) == (None, None)
    assert not {"max_cost", "cancel_reason"} & set(older.to_hash())  # and writes neither back
    budget = JobRecord(model="test", total=1, created_at=1.0, max_cost=Decimal("0.25"), cancel_reason="why")
    fields = budget.to_hash()
    assert (fields["max_cost"], fields["cancel_reason"]) == ("0.25", "why")
    assert JobRecord.from_hash({k: str(v) for k, v in fields.items()}) == budget


# -- the command line ---------------------------------------------------------------------------------------------
def test_submit_estimate_prints_the_estimate_with_no_broker(tmp_path: Path, clean_env: dict[str, str]) -> None:
    rows = [{"custom_id": f"q{i}", "prompt": question} for i, question in enumerate(QUESTIONS)]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    shown = batchline("submit", str(path), "--model", "openai:gpt-4o-mini", "--estimate", env=clean_env)
    assert shown.returncode == 0, shown.stderr
    prompts = [(f"q{i}", [ModelRequest.user_text_prompt(question)]) for i, question in enumerate(QUESTIONS)]
    found = estimate_cost_sync("openai:gpt-4o-mini", prompts)
    assert "Estimate for 3 requests to openai:gpt-4o-mini (nothing was sent)" in shown.stdout
    assert f"{found.input_tokens.lower:,}" in shown.stdout and f"{found.output_tokens.upper:,}" in shown.stdout
    unknown = batchline("submit", str(path), "--model", "openai:no-such-model", "--estimate", env=clean_env)
    assert unknown.returncode == 0 and "unknown" in unknown.stdout
    refused = batchline("submit", str(path), "--model", "test", "--max-cost", "0", env=clean_env)
    assert refused.returncode == 2 and "expected an amount of USD above 0" in refused.stderr


def test_many_request_sizes_on_a_tiered_price_are_priced_rounded_outward() -> None:
    """gemini-2.5-pro's price has a long-context tier, so it is priced size by size; past 256 distinct sizes, the
    sizes are rounded to two digits, down for the lower bound and up for the upper, which keeps both bounds."""
    items = [(f"r{i}", [ModelRequest.user_text_prompt("word " * (i + 1))]) for i in range(300)]
    found = estimate_cost_sync("google:gemini-2.5-pro", items, model_settings={"max_tokens": 1234})
    sizes = bodies("google:gemini-2.5-pro", items, settings={"max_tokens": 1234})
    exact_lower = cost_of("gemini", "gemini-2.5-pro", Counter((i + 1, 0) for i in range(300)))
    exact_upper = cost_of("gemini", "gemini-2.5-pro", Counter((len(body), 1234) for body in sizes))
    assert found.cost.lower is not None and found.cost.upper is not None
    assert exact_lower is not None and exact_upper is not None
    assert exact_lower * Decimal("0.9") < found.cost.lower < exact_lower
    assert exact_upper < found.cost.upper < exact_upper * Decimal("1.1")


def test_submit_estimate_with_max_cost_says_whether_submit_would_take_the_job(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    rows = [{"custom_id": f"q{i}", "prompt": question} for i, question in enumerate(QUESTIONS)]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    command = ("submit", str(path), "--model", "openai:gpt-4o-mini", "--estimate", "--max-cost")
    taken = batchline(*command, "0.5", env=clean_env)
    assert (
        taken.returncode == 0
        and "--max-cost $0.50: the lower bound stays within it; submit would take the job" in taken.stdout
    )
    refused = batchline(*command, "0.0000001", env=clean_env)
    assert refused.returncode == 1, refused.stderr
    assert "--max-cost $1.00e-7: submit would refuse this job: this job costs at least $" in refused.stdout

"""Keys and prompts stay out of what operators see: errors and their chains, retries (Flower, the result backend),
log lines. Each case here leaked before it was fixed."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from celery import Celery
from celery.exceptions import Retry

from batchline import tasks
from batchline.cli_jobs import read_requests
from batchline.errors import BatchInputError, ProviderRejected, TransientProviderError
from batchline.providers.anthropic.transport import AnthropicTransport
from batchline.providers.gemini.transport import GeminiTransport
from batchline.providers.http import ProviderHTTP
from batchline.providers.mistral.transport import MistralTransport
from batchline.providers.openai.transport import OpenAITransport

SECRET = "SECRET-4f1c"
CALLS: dict[str, Callable[[], object]] = {
    "OPENAI_API_KEY": lambda: OpenAITransport("gpt-4o-mini").cancel("batch_abc"),
    "ANTHROPIC_API_KEY": lambda: AnthropicTransport("claude-sonnet-4-5").cancel("msgbatch_abc"),
    "GEMINI_API_KEY": lambda: GeminiTransport("gemini-2.5-flash").status("batches/abc"),
    "MISTRAL_API_KEY": lambda: MistralTransport("mistral-small-latest").cancel("abc"),
}


def everything_said(error: BaseException) -> str:
    """An error as a traceback prints it, with every error it chains: what Celery puts in Flower and its logs."""
    return "".join(traceback.format_exception(error)) + repr(error.args)


@pytest.mark.parametrize("variable", CALLS)
@pytest.mark.parametrize("pasted", ["\u200b", "\u2019x", "é", "\nX-Other: 1"])
def test_a_key_http_cannot_carry_is_refused_and_never_shown(
    variable: str, pasted: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zero-width space, a curly quote or a line break pasted with the key: httpx raised an error holding the whole
    header, and the cancel and cleanup calls, which nothing wraps, took it to the worker's log and Flower."""
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv(variable, f"sk-{SECRET}{pasted}")
    with pytest.raises(ProviderRejected) as raised:
        CALLS[variable]()
    assert raised.value.status_code == 401  # waited for slowly, as a missing key is: the operator sets it again
    assert "set that value again" in str(raised.value)
    assert SECRET not in everything_said(raised.value)


def test_a_retried_step_keeps_the_providers_words_out_of_its_traceback_and_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The Retry was raised inside the `except`, so it carried the provider's error as its context: Celery's
    task-retried event (Flower) and the backend's RETRY record hold that traceback. A gateway may echo the prompt."""
    app = Celery(set_as_current=False)
    said = "anthropic: POST /v1/messages/batches answered 503"

    @app.task(bind=True, max_retries=None)
    def step(self: Any) -> None:
        with tasks._provider_errors_retry(self, "job1"):
            raise TransientProviderError(f"{said}: echoed 'my {SECRET} prompt'", loggable=said)

    step.push_request(called_directly=False, retries=0, id="t1", delivery_info={}, is_eager=True)
    with caplog.at_level(logging.WARNING, logger="batchline"), pytest.raises(Retry) as raised:
        step.run()
    assert SECRET not in everything_said(raised.value)
    assert said in caplog.text and SECRET not in caplog.text


def test_a_provider_refusal_keeps_its_words_for_the_job_and_out_of_logs() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(400, json={"error": {"message": f"bad input: 'my {SECRET} prompt'"}})

    http = ProviderHTTP("openai", "https://api.example/v1", {}, transport=httpx2.MockTransport(refuse))
    with pytest.raises(ProviderRejected) as raised:
        http.request("POST", "/batches", idempotent=False)
    assert SECRET in str(raised.value)  # the job's stored error: its owner reads why
    assert raised.value.loggable == "openai: POST /batches answered 400"


def test_errors_and_http_logs_name_no_query_and_no_password(caplog: pytest.LogCaptureFixture) -> None:
    """httpx2 logs each request's whole URL at INFO (workers run at INFO); an upload session's id rides in the query."""
    calls = []

    def busy(request: httpx2.Request) -> httpx2.Response:
        calls.append(request)
        return httpx2.Response(503)

    http = ProviderHTTP("gemini", f"https://ops:{SECRET}@gw.example/v1", {}, transport=httpx2.MockTransport(busy))
    http.attempts = 1
    with caplog.at_level(logging.INFO), pytest.raises(TransientProviderError) as raised:
        http.request("PUT", f"https://gw.example/upload?upload_id={SECRET}")
    assert calls  # it was sent
    assert str(raised.value).startswith("gemini: PUT https://gw.example:443/upload answered 503")
    assert SECRET not in everything_said(raised.value)
    assert SECRET not in caplog.text


def test_messages_that_do_not_validate_are_named_without_the_prompt(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    line = {"custom_id": "a", "messages": [{"kind": "request", "parts": [{"part_kind": "user-prompt", "content": 7}]}]}
    line["messages"][0]["parts"].append({"part_kind": "nonsense", "content": f"my {SECRET} prompt"})
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(BatchInputError, match="line 1: messages are not pydantic-ai messages") as raised:
        list(read_requests(path))
    assert SECRET not in everything_said(raised.value)

"""`groq:`, `together:` and `azure:` against the emulator: a job's lifecycle, failures and expiry, where each key goes,
the crash between create and record (found by metadata, or by the input file for Together), the examples, and a real
worker killed while creating batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic_ai.models.batch import BatchRequest

from batchline import BatchStatus, batch_create_sync, batch_results_sync, batch_wait_sync, worker
from batchline.config import Settings
from batchline.emulator import BatchFault, Emulator, HttpFault
from batchline.errors import BatchInputError, ProviderRejected
from batchline.model_forms import ModelNotBatchable, resolve_model
from batchline.providers import get_provider
from batchline.providers.endpoints import untrusted
from batchline.providers.openai_compat import CompatProvider
from batchline.providers.openai_compat.transport import client_config
from batchline.raw import RawRequest

from .conftest import RealSetup, make_real_setup
from .openai_anthropic_helpers import ask, context, fresh_runtime
from .test_examples_batch_api import EXAMPLES, NAMES, check_output, expected, run_in_process
from .test_faults_openai import Workers, finish, requests
from .waiting import wait_for

MODELS = {
    "groq": "groq:llama-3.1-8b-instant",
    "together": "together:meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "azure": "azure:gpt-4o-mini-batch",
}
CREATE_PATHS = {"groq": "/openai/v1/batches", "together": "/together/v1/batches", "azure": "/openai/batches"}


def compat_env(emulator: Emulator) -> dict[str, str]:
    """The variables a user sets for the three providers (their SDKs' names), pointing at the emulator."""
    return {
        "GROQ_BASE_URL": emulator.groq_base_url,
        "GROQ_API_KEY": "gsk_test_not_a_real_key",
        "TOGETHER_BASE_URL": emulator.together_base_url,
        "TOGETHER_API_KEY": "together-test-key",
        "AZURE_OPENAI_ENDPOINT": emulator.azure_endpoint,
        "AZURE_OPENAI_API_KEY": "azure-test-key",
        "OPENAI_API_VERSION": "2024-10-21",
    }


@pytest.fixture
def compat(emulator: Emulator, embedded: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    for name, value in compat_env(emulator).items():
        monkeypatch.setenv(name, value)
    fresh_runtime()
    yield emulator
    fresh_runtime()


def run(model: str, count: int = 4) -> str:
    job = batch_create_sync(model, [(f"q{i}", ask(f"question {i}")) for i in range(count)], poll_interval=0.1)
    return job.id


# -- lifecycle --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", MODELS)
def test_a_job_runs_on_the_providers_own_api(provider: str, compat: Emulator) -> None:
    batch = batch_wait_sync(run(MODELS[provider], 5))
    assert batch.status is BatchStatus.COMPLETED and batch.completed_count == 5
    texts = {r.custom_id: r.response.text for r in batch_results_sync(batch.id) if r.response is not None}
    assert texts == {f"q{i}": f"Mock response for q{i}" for i in range(5)}
    calls = compat.stats()["calls"]
    assert calls[f"POST {CREATE_PATHS[provider]}"] == 1 and "POST /v1/batches" not in calls
    assert compat.received()["openai"] == [f"q{i}" for i in range(5)]  # each request sent once


@pytest.mark.parametrize("provider", MODELS)
def test_a_failed_batch_gives_every_request_its_reason(provider: str, compat: Emulator) -> None:
    compat.add_fault(BatchFault(outcome="fail", code="model_not_available", message="No batch deployment"))
    batch = batch_wait_sync(run(MODELS[provider], 2))
    assert batch.status is BatchStatus.FAILED
    for result in batch_results_sync(batch.id):
        assert result.error is not None and "No batch deployment" in result.error.message


def test_an_expired_together_batch_keeps_its_answers_and_resends_the_rest(compat: Emulator) -> None:
    compat.add_fault(BatchFault(outcome="expire", done_fraction=0.5))
    batch = batch_wait_sync(run(MODELS["together"], 6))
    assert batch.status is BatchStatus.COMPLETED and batch.completed_count == 6
    assert compat.stats()["calls"]["POST /together/v1/batches"] == 2  # the expired half in a new batch


@pytest.mark.parametrize("provider", MODELS)
def test_a_truncated_download_and_rate_limited_polls_are_ridden_out(provider: str, compat: Emulator) -> None:
    compat.add_fault(HttpFault(kind="truncate", path="/content", fraction=0.5, times=1))
    compat.add_fault(HttpFault(status=429, retry_after=0.1, method="GET", path=r"/batches/[^/]+$", times=2))
    batch = batch_wait_sync(run(MODELS[provider], 50))
    results = batch_results_sync(batch.id)
    assert batch.status is BatchStatus.COMPLETED and len(results) == 50 and all(r.is_successful for r in results)
    assert compat.stats()["openai"]["batches_created"] == 1


def test_a_refused_create_is_not_retried_and_its_file_is_deleted(compat: Emulator) -> None:
    compat.add_fault(HttpFault(status=400, method="POST", path=r"/openai/v1/batches$", times=1))
    batch = batch_wait_sync(run(MODELS["groq"], 2))
    assert batch.status is BatchStatus.FAILED
    calls = compat.stats()["calls"]
    assert calls["POST /openai/v1/batches"] == 1 and calls["DELETE /openai/v1/files/{file_id}"] == 1


# -- keys and endpoints -----------------------------------------------------------------------------------------------
def test_each_key_goes_in_its_providers_header_to_its_providers_base_url() -> None:
    env = {"GROQ_API_KEY": "g", "TOGETHER_API_KEY": "t", "AZURE_OPENAI_API_KEY": "a"}
    env["AZURE_OPENAI_ENDPOINT"] = "https://res.openai.azure.com/"
    flavours = {p: get_provider(m).flavour for p, m in MODELS.items()}  # type: ignore[attr-defined]
    assert client_config(flavours["groq"], env) == ("https://api.groq.com/openai/v1", {"Authorization": "Bearer g"})
    assert client_config(flavours["together"], env) == ("https://api.together.xyz/v1", {"Authorization": "Bearer t"})
    assert client_config(flavours["azure"], env) == ("https://res.openai.azure.com/openai", {"api-key": "a"})
    with pytest.raises(ProviderRejected, match="GROQ_API_KEY is not set"):
        client_config(flavours["groq"], {"OPENAI_API_KEY": "o"})
    with pytest.raises(ProviderRejected, match="AZURE_OPENAI_ENDPOINT is not set"):
        client_config(flavours["azure"], {"AZURE_OPENAI_API_KEY": "a"})


def test_a_key_goes_only_to_its_providers_origin() -> None:
    assert untrusted("groq", "https://api.groq.com/openai/v1", (), {}) is None
    assert untrusted("together", "https://api.together.xyz/v1", (), {}) is None
    assert "not one the workers trust" in (untrusted("groq", "https://api.together.xyz/v1", (), {}) or "")
    azure_env = {"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com"}
    assert untrusted("azure", "https://res.openai.azure.com/openai", (), azure_env) is None
    assert "AZURE_OPENAI_ENDPOINT" in (untrusted("azure", "https://other.openai.azure.com", (), azure_env) or "")


def test_model_strings_name_the_adapters() -> None:
    assert resolve_model("azure:my-deployment").model == "azure:my-deployment"
    assert resolve_model("groq:llama-3.1-8b-instant").model == "groq:llama-3.1-8b-instant"
    with pytest.raises(ModelNotBatchable, match="'azure:<batch deployment>'"):
        resolve_model("azure-responses:gpt-4o")
    assert get_provider("together:m").max_bytes == 100_000_000 and get_provider("azure:d").max_requests == 100_000


def test_raw_lines_must_name_the_providers_endpoint_and_the_jobs_model() -> None:
    azure = get_provider("azure:dep")
    body = {"model": "dep", "messages": []}
    assert azure.encode_raw(RawRequest("a", body, "/chat/completions")).custom_id == "a"
    with pytest.raises(BatchInputError, match="not azure's batch endpoint"):
        azure.encode_raw(RawRequest("a", body, "/v1/chat/completions"))
    with pytest.raises(BatchInputError, match="runs one model"):
        azure.encode_raw(RawRequest("a", {"model": "other"}, "/chat/completions"))


# -- pydantic-ai model instances -------------------------------------------------------------------------------------
def test_an_azure_chat_model_instance_batches_on_its_endpoint_with_its_settings(compat: Emulator) -> None:
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.azure import AzureProvider

    provider = AzureProvider(azure_endpoint=compat.azure_endpoint, api_version="2024-10-21", api_key="caller-secret")
    model = OpenAIChatModel("my-deployment", provider=provider, settings={"temperature": 0.25})
    form = resolve_model(model)
    assert form.model == "azure:my-deployment" and form.endpoint is not None
    assert form.endpoint.base_url.rstrip("/") == compat.azure_endpoint + "/openai"
    assert "caller-secret" not in form.endpoint.to_json()
    adapter = get_provider(form.model)
    adapter.use_model(model)
    body = adapter.encode(BatchRequest(custom_id="a", messages=ask("x"))).body
    assert b'"temperature":0.25' in body and b'"model":"my-deployment"' in body
    batch = batch_wait_sync(batch_create_sync(model, [("a", ask("x"))], poll_interval=0.1).id)
    assert batch.status is BatchStatus.COMPLETED
    assert compat.stats()["calls"]["POST /openai/batches"] == 1


def test_a_together_chat_model_instance_encodes_without_calling_together() -> None:
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.together import TogetherProvider

    model = OpenAIChatModel("meta-llama/m", provider=TogetherProvider(api_key="caller-secret"))
    form = resolve_model(model)
    assert form.model == "together:meta-llama/m" and form.endpoint is None  # the official URL: the workers' own
    adapter = get_provider(form.model)
    adapter.use_model(model)
    encoded = adapter.encode(BatchRequest(custom_id="a", messages=ask("x")))  # no network here: nothing is sent
    assert b'"model":"meta-llama/m"' in encoded.body


# -- the crash between create and record ------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", MODELS)
def test_find_recovers_a_batch_whose_id_was_lost(
    provider: str, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in compat_env(emulator).items():
        monkeypatch.setenv(name, value)
    model = MODELS[provider]
    body = get_provider(model).encode(BatchRequest(custom_id="a", messages=ask("x"))).body
    adapter = get_provider(model, context())
    assert isinstance(adapter, CompatProvider) and adapter.can_find
    made = [adapter.create("job-1", part, iter([("a", body)]), 1) for part in range(3)]
    again = get_provider(model, context())  # another worker, which never saw the ids
    found = again.find("job-1", 1)
    assert found is not None and found.id == made[1].id and found.state == "completed"
    assert again.find("job-1", 7) is None and again.find("job-2", 0) is None


# -- the examples -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", MODELS)
@pytest.mark.parametrize("name", NAMES)
def test_examples_on_each_provider(
    name: str,
    provider: str,
    compat: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    script = EXAMPLES / f"{name}.py"
    monkeypatch.setenv("BATCHLINE_EXAMPLE_MODEL", MODELS[provider])
    check_output(expected(script), run_in_process(script, monkeypatch, capsys))


# -- a real worker, killed while creating --------------------------------------------------------------------------
@pytest.fixture
def compat_workers(redis_url: str, emulator: Emulator, tmp_path: Path) -> Iterator[tuple[RealSetup, Workers]]:
    setup = make_real_setup(redis_url, visibility_timeout=6, max_poll_interval=1, claim_timeout=3)
    worker.use_app(setup.app)
    workers = Workers({**setup.env, **compat_env(emulator)}, tmp_path / "worker.log")
    yield setup, workers
    worker._current = None
    workers.current.stop()
    setup.cleanup()


@pytest.mark.redis
@pytest.mark.parametrize("provider", MODELS)
def test_a_worker_killed_while_creating_pays_for_each_part_once(
    provider: str, compat_workers: tuple[RealSetup, Workers], emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup, workers = compat_workers
    monkeypatch.setattr(type(get_provider(MODELS[provider])), "max_requests", 10)  # planned here: two parts
    path = CREATE_PATHS[provider]
    emulator.add_fault(HttpFault(kind="slow", delay=3.0, method="POST", path=path + "$", times=2))
    job = batch_create_sync(MODELS[provider], requests(20), submit_wait=0)
    calls = emulator.stats
    for seen in (1, 2):
        wait_for(lambda s=seen: calls()["calls"].get(f"POST {path}", 0) >= s, f"create call {seen}")
        workers.restart()  # killed while the create call is under way: its batch is found, not made again
    finish(setup, emulator, job.id, 20, parts=2)

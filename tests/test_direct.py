"""`batchline.direct`: pydantic-ai's `model_request_batch` with the import changed runs on a real batchline worker and
gives what pydantic-ai's in-process run gives against the same emulator, response by response."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import itertools
import re
import textwrap
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pydantic_ai.direct
import pytest
from pydantic_ai import ModelRequest
from pydantic_ai.exceptions import ModelAPIError, UserError
from pydantic_ai.messages import ModelResponse
from pydantic_ai.models.batch import BatchRequest

import batchline.direct
from batchline import batch_status_sync, worker
from batchline.emulator import Emulator
from batchline.emulator import store as emulator_store
from batchline.emulator.config import BatchFault, HttpFault, RequestFault
from batchline.runtime import runtime_for

from .conftest import RealSetup, WorkerProcess, make_real_setup
from .openai_anthropic_helpers import FAKE_OPENAI_KEY, provider_env

MODELS = {
    "openai": "openai:gpt-4o-mini",
    "anthropic": "anthropic:claude-haiku-5-5",
    "google": "google:gemini-2.5-flash",
}
GEMINI_KEY = "gemini-test-not-a-real-key"
FAST = timedelta(seconds=0.05)


def emulator_env(emulator: Emulator) -> dict[str, str]:
    """Every provider's key and base URL, pointing at the emulator, as the workers (and pydantic-ai) read them."""
    return {
        **provider_env(emulator),
        "GEMINI_API_KEY": GEMINI_KEY,
        "GOOGLE_GEMINI_BASE_URL": emulator.gemini_base_url,
    }


@pytest.fixture(scope="module")
def direct_setup(
    redis_url: str, emulator_server: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealSetup]:
    """A real worker process with the providers' environment pointing at the session's emulator."""
    setup = make_real_setup(redis_url)
    setup.env.update(emulator_env(emulator_server))
    setup.env.pop("GOOGLE_API_KEY", None)
    process = WorkerProcess(setup.env, tmp_path_factory.mktemp("direct") / "worker.log")
    yield setup
    process.stop()
    setup.cleanup()


@pytest.fixture
def on_worker(direct_setup: RealSetup, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[RealSetup]:
    """This process sends through the real worker; pydantic-ai's in-process runs read the same emulator."""
    for name, value in emulator_env(emulator).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    worker.use_app(direct_setup.app)
    try:
        yield direct_setup
    finally:
        worker._current = None


@pytest.fixture
def same_ids(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """The emulator's ids (files, batches, and the response ids made of them) drawn from a counter that `restart`
    sets back, so two runs that make the same calls get the same ids."""
    counter = itertools.count()

    def new_id(self: Any, provider: str, alphabet: str = emulator_store._ALNUM, length: int = 24) -> str:
        return emulator_store.digest_id(alphabet, length, provider, next(counter))

    def restart() -> None:
        nonlocal counter
        counter = itertools.count()

    monkeypatch.setattr(emulator_store.State, "new_id", new_id)
    return restart


def docstring_example() -> str:
    """The example in `pydantic_ai.direct.model_request_batch`'s docstring, as pydantic-ai documents it."""
    doc = inspect.getdoc(pydantic_ai.direct.model_request_batch) or ""
    found = re.search(r"```py[^\n]*\n(.*?)```", doc, re.S)
    assert found, "pydantic-ai's model_request_batch docstring has no example"
    return textwrap.dedent(found.group(1))


def run_example(code: str, model: str) -> tuple[str, list[Any]]:
    """Run an example's `main()` on `model`; answer what it printed and what `model_request_batch` returned."""
    code = code.replace("'anthropic:claude-haiku-5-5'", repr(model))
    namespace: dict[str, Any] = {"__name__": "example"}
    exec(compile(code, "model_request_batch_example.py", "exec"), namespace)
    returned: list[Any] = []
    inner = namespace["model_request_batch"]

    async def recording(*args: Any, **kwargs: Any) -> Any:
        result = await inner(*args, **kwargs)
        returned.extend(result)
        return result

    namespace["model_request_batch"] = recording
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        asyncio.run(namespace["main"]())
    return out.getvalue(), returned


def assert_same(ours: ModelResponse | ModelAPIError, theirs: ModelResponse | ModelAPIError) -> None:
    """Part by part, as pydantic-ai made it; only what pydantic-ai stamps "now" (and the batch's own creation time,
    which the emulator reports) may differ."""
    assert type(ours) is type(theirs)
    if isinstance(theirs, ModelAPIError):
        assert isinstance(ours, ModelAPIError)
        assert (ours.model_name, ours.message) == (theirs.model_name, theirs.message)
        assert getattr(ours, "status_code", None) == getattr(theirs, "status_code", None)
        return
    assert isinstance(ours, ModelResponse)
    assert ours.parts == theirs.parts
    assert ours.usage == theirs.usage
    assert ours.model_name == theirs.model_name
    assert ours.provider_name == theirs.provider_name
    assert ours.finish_reason == theirs.finish_reason
    assert ours.provider_response_id == theirs.provider_response_id
    details = {k: v for k, v in (theirs.provider_details or {}).items() if k != "timestamp"}
    assert {k: v for k, v in (ours.provider_details or {}).items() if k != "timestamp"} == details


def in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydantic-ai's own run checks the emulator at once instead of after its 30-second default first wait."""
    monkeypatch.setattr(pydantic_ai.direct, "poll_delay", lambda *args: 0.02)


# -- the key test: pydantic-ai's own example, the import changed -------------------------------------------------------
@pytest.mark.redis
@pytest.mark.parametrize("provider", list(MODELS))
def test_pydantic_ais_example_gives_the_same_responses_through_a_real_worker(
    provider: str,
    on_worker: RealSetup,
    emulator: Emulator,
    same_ids: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = docstring_example()
    assert "from pydantic_ai.direct import model_request_batch" in example
    swapped = example.replace("from pydantic_ai.direct import", "from batchline.direct import")

    in_process(monkeypatch)
    theirs_out, theirs = run_example(example, MODELS[provider])
    emulator.reset()
    same_ids()
    ours_out, ours = run_example(swapped, MODELS[provider])

    assert len(ours) == len(theirs) == 2
    for mine, pydantic_ais in zip(ours, theirs, strict=True):
        assert_same(mine, pydantic_ais)
    assert ours_out == theirs_out
    assert "france Mock response for france" in ours_out
    stored = runtime_for(on_worker.app).store
    jobs = stored.job_ids(10)
    assert jobs and stored.load_job(jobs[0]).model == MODELS[provider]  # it ran as a batchline job


@pytest.mark.redis
@pytest.mark.parametrize("provider", list(MODELS))
def test_a_request_error_is_returned_in_its_place_as_pydantic_ai_returns_it(
    provider: str,
    on_worker: RealSetup,
    emulator: Emulator,
    same_ids: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    requests = [
        BatchRequest(custom_id=f"q{i}", messages=[ModelRequest.user_text_prompt(f"question {i}")]) for i in range(3)
    ]
    fault = RequestFault(custom_ids=["q1", "1"], kind="invalid_request", message="bad request q1")
    in_process(monkeypatch)
    emulator.add_fault(fault)
    theirs = asyncio.run(pydantic_ai.direct.model_request_batch(MODELS[provider], requests, poll_interval=FAST))
    emulator.reset()
    emulator.add_fault(fault)
    same_ids()
    ours = asyncio.run(batchline.direct.model_request_batch(MODELS[provider], requests, poll_interval=FAST))
    assert isinstance(theirs[1], ModelAPIError) and isinstance(ours[1], ModelAPIError)
    for mine, pydantic_ais in zip(ours, theirs, strict=True):
        assert_same(mine, pydantic_ais)


@pytest.mark.redis
def test_max_requests_splits_the_batches_as_pydantic_ai_does(on_worker: RealSetup, emulator: Emulator) -> None:
    requests = [BatchRequest(custom_id=f"r{i}", messages=[ModelRequest.user_text_prompt(f"q {i}")]) for i in range(5)]
    responses = asyncio.run(
        batchline.direct.model_request_batch(
            MODELS["openai"], requests, max_requests=2, poll_interval=FAST, max_poll_interval=timedelta(seconds=7)
        )
    )
    assert [r.text for r in responses if isinstance(r, ModelResponse)] == [f"Mock response for r{i}" for i in range(5)]
    assert emulator.stats()["openai"]["batches_created"] == 3
    store = runtime_for(on_worker.app).store
    record = store.load_job(store.job_ids(1)[0])
    assert (record.max_requests, record.max_poll_interval, record.poll_interval) == (2, 7.0, 0.05)


@pytest.mark.redis
def test_a_batch_that_cannot_be_created_is_raised_from_the_call(on_worker: RealSetup, emulator: Emulator) -> None:
    emulator.add_fault(HttpFault(kind="status", status=400, provider="anthropic", method="POST", path="/batches$"))
    requests = [BatchRequest(custom_id="a", messages=[ModelRequest.user_text_prompt("q")])]
    with pytest.raises(ModelAPIError, match="400"):
        asyncio.run(batchline.direct.model_request_batch(MODELS["anthropic"], requests, poll_interval=FAST))


@pytest.mark.redis
def test_a_failed_provider_batch_gives_each_request_its_error(on_worker: RealSetup, emulator: Emulator) -> None:
    emulator.add_fault(BatchFault(outcome="fail", provider="openai", times=None))
    requests = [BatchRequest(custom_id="a", messages=[ModelRequest.user_text_prompt("q")])]
    (outcome,) = asyncio.run(
        batchline.direct.model_request_batch(MODELS["openai"], requests, poll_interval=FAST, max_resubmissions=0)
    )
    assert isinstance(outcome, ModelAPIError)


@pytest.mark.redis
def test_cancelling_the_call_cancels_the_job(on_worker: RealSetup, emulator: Emulator) -> None:
    emulator.configure(stage_seconds=600)
    requests = [BatchRequest(custom_id="a", messages=[ModelRequest.user_text_prompt("q")])]
    store = runtime_for(on_worker.app).store
    before = set(store.job_ids(100))

    async def call_then_cancel() -> None:
        task = asyncio.create_task(batchline.direct.model_request_batch(MODELS["openai"], requests, poll_interval=FAST))
        await asyncio.sleep(1.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(call_then_cancel())
    (job_id,) = set(store.job_ids(100)) - before
    assert batch_status_sync(job_id).status.value in ("cancelling", "cancelled")


# -- refused before anything is stored, as pydantic-ai refuses -------------------------------------------------------
def test_request_timeout_raises_user_error(embedded: Any) -> None:
    request = BatchRequest(
        custom_id="a", messages=[ModelRequest.user_text_prompt("q")], model_settings={"request_timeout": 5}
    )
    with pytest.raises(UserError, match="request_timeout"):
        asyncio.run(batchline.direct.model_request_batch(MODELS["openai"], [request]))


def test_duplicate_custom_ids_raise_user_error(embedded: Any) -> None:
    request = BatchRequest(custom_id="a", messages=[ModelRequest.user_text_prompt("q")])
    with pytest.raises(UserError, match="unique"):
        asyncio.run(batchline.direct.model_request_batch(MODELS["openai"], [request, request]))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"max_requests": 0}, "max_requests"),
        ({"max_resubmissions": -1}, "max_resubmissions"),
        ({"poll_interval": timedelta(minutes=20)}, "poll_interval"),
    ],
)
def test_arguments_are_checked_as_pydantic_ai_checks_them(
    embedded: Any, arguments: dict[str, Any], message: str
) -> None:
    request = BatchRequest(custom_id="a", messages=[ModelRequest.user_text_prompt("q")])
    with pytest.raises(UserError, match=message):
        asyncio.run(batchline.direct.model_request_batch(MODELS["openai"], [request], **arguments))
    with pytest.raises(UserError, match=message):
        asyncio.run(pydantic_ai.direct.model_request_batch("test", [request], **arguments))


def test_no_requests_give_no_responses(embedded: Any) -> None:
    assert asyncio.run(batchline.direct.model_request_batch(MODELS["openai"], [])) == []


def test_the_signature_and_defaults_are_pydantic_ais() -> None:
    ours = inspect.signature(batchline.direct.model_request_batch)
    theirs = inspect.signature(pydantic_ai.direct.model_request_batch)
    assert list(ours.parameters) == list(theirs.parameters)
    for name, parameter in theirs.parameters.items():
        assert ours.parameters[name].default == parameter.default, name
        assert ours.parameters[name].kind == parameter.kind, name


def test_every_name_of_pydantic_ai_direct_imports_from_batchline_direct() -> None:
    for name in pydantic_ai.direct.__all__:
        assert hasattr(batchline.direct, name), name
    assert set(batchline.direct.__all__) == set(pydantic_ai.direct.__all__)
    for name in ("model_request", "model_request_sync", "model_request_stream", "model_request_stream_sync"):
        assert getattr(batchline.direct, name) is getattr(pydantic_ai.direct, name)
    assert batchline.direct.batch_models is pydantic_ai.direct.batch_models  # any other name: pydantic-ai's


@pytest.mark.redis
def test_the_readmes_switching_example_runs_on_the_worker(on_worker: RealSetup) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Switching from pydantic-ai", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code and "from batchline.direct import model_request_batch" in code.group(1)
    printed, responses = run_example(code.group(1), "")
    assert printed == "france Mock response for france\nitaly Mock response for italy\n"
    assert all(isinstance(response, ModelResponse) for response in responses)


# -- a Model instance: its settings and base URL travel, its key does not --------------------------------------------
SECRET = "sk-instance-secret-never-stored-0123456789"


def everything_stored(setup: RealSetup) -> bytes:
    """Every key and value of this setup's store, broker and result backend, as one blob to search."""
    client = setup.client
    blob: list[bytes] = []
    for key in client.scan_iter(match=setup.pattern, count=1000):
        kind = client.type(key)
        blob.append(key)
        if kind == b"string":
            blob.append(client.get(key) or b"")
        elif kind == b"hash":
            blob += [b for pair in client.hgetall(key).items() for b in pair]
        elif kind == b"list":
            blob += client.lrange(key, 0, -1)
        elif kind == b"set":
            blob += list(client.smembers(key))
        elif kind == b"zset":
            blob += client.zrange(key, 0, -1)
        elif kind == b"stream":
            blob += [repr(entry).encode() for entry in client.xrange(key)]
    return b"\n".join(blob)


@pytest.mark.redis
def test_a_model_instance_runs_with_its_settings_and_its_key_stays_in_this_process(
    on_worker: RealSetup, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celery.signals import before_task_publish
    from pydantic_ai.models.openai import OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    from batchline.emulator import http as emulator_http

    keys_seen: list[str] = []
    authorized = emulator_http.authorized

    def recording(provider: Any, request: Any) -> bool:
        keys_seen.append(request.headers.get("authorization", ""))
        return authorized(provider, request)

    monkeypatch.setattr(emulator_http, "authorized", recording)
    published: list[str] = []

    def capture(body: Any = None, headers: Any = None, **_: Any) -> None:
        published.append(repr((body, headers)))

    model = OpenAIResponsesModel(
        "gpt-4o-mini",
        provider=OpenAIProvider(base_url=emulator.openai_base_url, api_key=SECRET),
        settings={"temperature": 0.25, "max_tokens": 77},
    )
    requests = [BatchRequest(custom_id=c, messages=[ModelRequest.user_text_prompt(c)]) for c in ("a", "b")]
    before_task_publish.connect(capture, weak=False)
    try:
        responses = asyncio.run(batchline.direct.model_request_batch(model, requests, poll_interval=FAST))
    finally:
        before_task_publish.disconnect(capture)

    assert [r.text for r in responses if isinstance(r, ModelResponse)] == ["Mock response for a", "Mock response for b"]
    store = runtime_for(on_worker.app).store
    job_id = store.job_ids(1)[0]
    assert emulator.openai_base_url in store.load_job(job_id).endpoint
    answers = [orjson.loads(result.body) for result in store.results(job_id, ["a", "b"]) if result is not None]
    # the emulator's answers echo what the request asked for, as OpenAI's do: the instance's settings reached it
    assert [(a["temperature"], a["max_output_tokens"]) for a in answers] == [(0.25, 77), (0.25, 77)]

    assert published, "the job's task messages were not seen"
    assert not [message for message in published if SECRET in message]
    assert SECRET.encode() not in everything_stored(on_worker)
    assert keys_seen and not [key for key in keys_seen if SECRET in key]  # the worker sent its own key
    assert any(FAKE_OPENAI_KEY in key for key in keys_seen)


@pytest.mark.redis
@pytest.mark.parametrize("provider", ["anthropic", "google"])
def test_anthropic_and_google_instances_run_on_the_worker_without_their_key(
    provider: str, on_worker: RealSetup, emulator: Emulator
) -> None:
    from pydantic_ai.models import Model
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.models.google import GoogleModel
    from pydantic_ai.providers.anthropic import AnthropicProvider
    from pydantic_ai.providers.google import GoogleProvider

    model: Model
    if provider == "anthropic":
        model = AnthropicModel(
            "claude-haiku-4-5", provider=AnthropicProvider(api_key=SECRET, base_url=emulator.anthropic_base_url)
        )
    else:
        model = GoogleModel("gemini-2.5-flash", provider=GoogleProvider(api_key=SECRET, base_url=emulator.url))
    requests = [BatchRequest(custom_id=c, messages=[ModelRequest.user_text_prompt(c)]) for c in ("a", "b")]
    responses = asyncio.run(batchline.direct.model_request_batch(model, requests, poll_interval=FAST))
    assert [r.text for r in responses if isinstance(r, ModelResponse)] == ["Mock response for a", "Mock response for b"]
    assert SECRET.encode() not in everything_stored(on_worker)


def test_a_model_without_its_providers_prefix_is_pydantic_ais_user_error() -> None:
    ask = [BatchRequest(custom_id="a", messages=[ModelRequest.user_text_prompt("q")])]
    with pytest.raises(UserError, match="names its provider first"):
        asyncio.run(batchline.direct.model_request_batch("gpt-4o-mini", ask))


def test_pydantic_ais_ranges_are_accepted_not_batchlines_narrower_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    # batch_create refuses a poll interval over a day or more than 10 resubmissions; pydantic-ai takes both, so the
    # drop-in does: the job is created with them (stopped here, before anything is stored).
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    seen: list[Any] = []

    def create_job(form: Any, requests: Any, numbers: Any, options: Any, limits: Any) -> Any:
        seen.append(numbers)
        raise RuntimeError("stop here")

    monkeypatch.setattr("batchline.api.create_job", create_job)
    ask = [BatchRequest(custom_id="a", messages=[ModelRequest.user_text_prompt("q")])]
    with pytest.raises(RuntimeError, match="stop here"):
        asyncio.run(
            batchline.direct.model_request_batch(
                "openai:gpt-4o-mini",
                ask,
                max_resubmissions=11,
                poll_interval=timedelta(days=2),
                max_poll_interval=timedelta(days=3),
            )
        )
    assert (seen[0].max_resubmissions, seen[0].poll_interval) == (11, 2 * 86400)

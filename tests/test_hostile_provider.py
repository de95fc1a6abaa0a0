"""A hostile or broken provider, driven through the emulator over real HTTP (issue 14, items 2, 5 and 6).

Each job must end, its counts must equal its request total, each request without a result must carry an error that
names the cause, no provider batch may be created twice, and no API key may reach an origin the operator did not
trust. `foreign` is a second HTTP listener, on another port, that records every request it gets.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai import ModelRequest

from batchline import (
    BatchStatus,
    batch_cancel_sync,
    batch_create_sync,
    batch_results_sync,
    batch_status_sync,
    pipeline,
    worker,
)
from batchline.config import Settings
from batchline.emulator import Emulator, HttpFault
from batchline.providers.gemini import GeminiProvider
from batchline.providers.openai.wire import to_snapshot as openai_to_snapshot
from batchline.runtime import runtime_for
from batchline.types import Batch, BatchResult

from .conftest import WorkerProcess, make_real_setup, set_embedded_settings, with_settings
from .openai_anthropic_helpers import FAKE_ANTHROPIC_KEY, FAKE_OPENAI_KEY, fresh_runtime, provider_env
from .waiting import wait_for

OPENAI, ANTHROPIC, GEMINI = "openai:gpt-4o-mini", "anthropic:claude-sonnet-4-5", "google:gemini-2.5-flash"
GEMINI_KEY = "gemini-test-key-not-a-secret-7f3a"
KEYS = (FAKE_OPENAI_KEY, FAKE_ANTHROPIC_KEY, GEMINI_KEY)
ATTEMPTS = 2
"""Poisoned tries per part in the embedded tests (the default, 5, is proven through a real worker below)."""


# -- a foreign origin --------------------------------------------------------------------------------------------------
@dataclass
class Foreign:
    """An HTTP listener on another port: it answers `body` to everything and records each request's headers."""

    url: str = ""
    body: bytes = b"{}"
    seen: list[dict[str, str]] = field(default_factory=list)

    def keys_seen(self) -> list[str]:
        return [key for headers in self.seen for key in KEYS if key in " ".join(headers.values())]


@pytest.fixture
def foreign() -> Iterator[Foreign]:
    record = Foreign()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            record.seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.send_header("content-length", str(len(record.body)))
            self.end_headers()
            self.wfile.write(record.body)

        do_GET = do_POST = do_PUT = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    record.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield record
    server.shutdown()
    server.server_close()


# -- the embedded default pointed at the emulator -------------------------------------------------------------------
@pytest.fixture
def hostile(
    emulator: Emulator, embedded: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Emulator]]:
    """The emulator with every provider's variables pointing at it; call it with settings to change them."""
    for name, value in provider_env(emulator).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emulator.gemini_base_url)
    monkeypatch.setattr(pipeline.base, "POISON_ATTEMPTS", ATTEMPTS)

    def configure(**settings: object) -> Emulator:
        set_embedded_settings(with_settings(embedded, **settings))
        return emulator

    fresh_runtime()
    yield configure
    fresh_runtime()


@pytest.fixture
def file_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gemini parts go as uploaded files, whose results come back as a file."""
    monkeypatch.setattr(GeminiProvider, "inline_limit", 1)


def ask(count: int) -> list[tuple[str, list[ModelRequest]]]:
    return [(f"q{i}", [ModelRequest.user_text_prompt(f"question {i}")]) for i in range(count)]


def run(model: str, count: int = 10, timeout: float = 60.0) -> tuple[Batch, list[BatchResult]]:
    """Create a job and wait for it to end (failing the test if it never does)."""
    job = batch_create_sync(model, ask(count), poll_interval=0.1, max_resubmissions=0)
    return run_to_end(job.id, timeout)


def run_to_end(job_id: str, timeout: float = 60.0) -> tuple[Batch, list[BatchResult]]:
    def ended() -> Batch | None:
        state = batch_status_sync(job_id)
        return state if state.is_complete else None

    state = wait_for(ended, lambda: f"job {job_id} to end (still {batch_status_sync(job_id).status})", timeout=timeout)
    return state, batch_results_sync(job_id)


def accounted(batch: Batch, results: list[BatchResult], total: int = 10) -> None:
    """Every request has exactly one result, and the counts add up to the total, never more."""
    assert batch.request_count == total
    assert batch.completed_count + batch.failed_count == total
    assert sorted(r.custom_id for r in results) == sorted(f"q{i}" for i in range(total))
    store = runtime_for(worker.app).store
    assert store.result_count(batch.id) == total  # nothing stored under a made-up key


def errors(results: list[BatchResult]) -> set[str]:
    return {r.error.message for r in results if r.error is not None}


def anomalies(batch: Batch) -> int:
    return int(pipeline.summary(runtime_for(worker.app), batch.id)["anomalies"])


def created(emulator: Emulator, provider: str) -> int:
    return int(emulator.stats()[provider]["batches_created"])


def calls(emulator: Emulator, name: str) -> int:
    return int(emulator.stats()["calls"].get(name, 0))


# -- item 2: provider URLs are trusted only on the provider's own origin ---------------------------------------------
def test_an_anthropic_results_url_on_another_origin_gets_no_key(
    hostile: Callable[..., Emulator], foreign: Foreign
) -> None:
    emulator = hostile()
    foreign_url = f"{foreign.url}/v1/messages/batches/results?steal=1"
    emulator.add_fault(
        HttpFault(
            kind="patch", provider="anthropic", method="GET", path=r"batches/[^/]+$", body={"results_url": foreign_url}
        )
    )
    batch, results = run(ANTHROPIC)
    assert foreign.seen == []  # not one request reached the other origin, so neither did the key
    assert batch.status is BatchStatus.FAILED
    accounted(batch, results)
    (message,) = errors(results)
    assert foreign.url.removeprefix("http://") in message and "BATCHLINE_TRUSTED_RESULT_HOSTS" in message
    assert created(emulator, "anthropic") == 1


def test_an_origin_the_operator_trusts_is_followed(hostile: Callable[..., Emulator], foreign: Foreign) -> None:
    emulator = hostile(trusted_result_hosts=frozenset({foreign.url}))
    result = b'{"type":"errored","error":{"type":"error","error":{"type":"api_error","message":"from the CDN"}}}'
    foreign.body = b"".join(b'{"custom_id":"q%d","result":%s}\n' % (i, result) for i in range(10))
    emulator.add_fault(
        HttpFault(
            kind="patch", provider="anthropic", method="GET", path=r"batches/[^/]+$", body={"results_url": foreign.url}
        )
    )
    batch, results = run(ANTHROPIC)
    accounted(batch, results)
    assert errors(results) == {"from the CDN"}
    assert foreign.keys_seen() == [FAKE_ANTHROPIC_KEY]  # the operator chose to send it there


def test_a_gemini_upload_url_on_another_origin_gets_no_file_and_no_key(
    hostile: Callable[..., Emulator], foreign: Foreign, file_mode: None
) -> None:
    emulator = hostile()
    upload_url = f"{foreign.url}/upload/v1beta/files?upload_id=x"
    emulator.add_fault(
        HttpFault(
            kind="patch",
            provider="gemini",
            method="POST",
            path=r"^/upload/",
            headers={"x-goog-upload-url": upload_url},
            times=1,
        )
    )
    batch, results = run(GEMINI)
    assert foreign.seen == []
    assert batch.status is BatchStatus.FAILED
    accounted(batch, results)
    (message,) = errors(results)
    assert foreign.url.removeprefix("http://") in message and "BATCHLINE_TRUSTED_RESULT_HOSTS" in message
    assert created(emulator, "gemini") == 0  # refused before any batch was made


@pytest.mark.parametrize(
    ("model", "path", "patch"),
    [
        (OPENAI, r"/v1/batches/[^/]+$", {"output_file_id": "../batches?limit=1"}),
        (GEMINI, r"/v1beta/batches/[^/:]+$", {"response": {"responsesFile": "files/../batches?x=1"}}),
    ],
    ids=["openai-output-file-id", "gemini-responses-file"],
)
def test_an_id_that_would_change_the_path_is_not_followed(
    hostile: Callable[..., Emulator], file_mode: None, model: str, path: str, patch: dict[str, Any]
) -> None:
    emulator = hostile()
    emulator.add_fault(HttpFault(kind="patch", method="GET", path=path, body=patch))
    before = dict(emulator.stats()["calls"])
    batch, results = run(model)
    accounted(batch, results)
    (message,) = errors(results)
    assert "is not a plain id" in message
    made = {k for k, v in emulator.stats()["calls"].items() if v != before.get(k)}
    assert not any("content" in name or "download" in name for name in made)  # no file was asked for


# -- item 5: counts never exceed the total -----------------------------------------------------------------------------
def _bad_lines(line_of: Callable[[str], str]) -> list[str]:
    return [
        "this line is not JSON",
        line_of("q1").replace('"q1"', "null"),  # no custom_id
        line_of("q2").replace('"q2"', "12345"),  # a numeric custom_id
        line_of("zz-not-in-this-part"),
        line_of("q3"),  # a repeat
        "[1, 2, 3]",
    ]


def _openai_line(custom_id: str) -> str:
    return (
        f'{{"id":"batch_req_x","custom_id":"{custom_id}","response":{{"status_code":500,"request_id":"r",'
        '"body":{"error":{"message":"injected","type":"server_error"}}},"error":null}'
    )


def _anthropic_line(custom_id: str) -> str:
    return (
        f'{{"custom_id":"{custom_id}","result":{{"type":"errored","error":{{"type":"error",'
        '"error":{"type":"api_error","message":"injected"}}}}'
    )


def _gemini_line(custom_id: str) -> str:
    return f'{{"key":"{custom_id}","error":{{"code":13,"message":"injected"}}}}'


@pytest.mark.parametrize(
    ("model", "path", "line_of"),
    [
        (OPENAI, r"/content$", _openai_line),
        (ANTHROPIC, r"/results$", _anthropic_line),
        (GEMINI, r":download$", _gemini_line),
    ],
    ids=["openai", "anthropic", "gemini"],
)
def test_unusable_result_lines_are_anomalies_never_results(
    hostile: Callable[..., Emulator], file_mode: None, model: str, path: str, line_of: Callable[[str], str]
) -> None:
    emulator = hostile()
    emulator.add_fault(HttpFault(kind="inject_lines", method="GET", path=path, lines=_bad_lines(line_of)))
    batch, results = run(model)
    assert batch.status is BatchStatus.COMPLETED
    accounted(batch, results)
    assert (batch.completed_count, batch.failed_count) == (10, 0)  # the real results, each stored once
    assert anomalies(batch) == 6
    assert batch_status_sync(batch).anomaly_count == 6  # what a user sees
    assert not errors(results)


# -- item 6: poison from a provider ends, it does not loop ------------------------------------------------------------
# Each provider's results download: its model, the emulator path a fault matches, and the name its statistics use.
each_download = pytest.mark.parametrize(
    ("model", "download", "name"),
    [
        (OPENAI, r"/content$", "GET /v1/files/{file_id}/content"),
        (ANTHROPIC, r"/results$", "GET /v1/messages/batches/{batch_id}/results"),
        (GEMINI, r":download$", "GET /v1beta/files/{name}:download"),
    ],
    ids=["openai", "anthropic", "gemini"],
)


@each_download
@pytest.mark.parametrize("fault", ["404", "truncated-every-time"])
def test_a_download_that_keeps_failing_ends_the_part(
    hostile: Callable[..., Emulator], file_mode: None, model: str, download: str, name: str, fault: str
) -> None:
    emulator = hostile()
    if fault == "404":
        emulator.add_fault(HttpFault(kind="status", status=404, method="GET", path=download))
    else:
        emulator.add_fault(HttpFault(kind="truncate", fraction=0.5, method="GET", path=download))
    batch, results = run(model)
    assert batch.status is BatchStatus.FAILED
    accounted(batch, results)
    (message,) = errors(results)
    assert "could not be read" in message
    assert ("404" in message) if fault == "404" else ("broke off" in message)
    assert calls(emulator, name) == ATTEMPTS  # bounded: tried, backed off, tried again, then ended
    assert created(emulator, model.partition(":")[0].replace("google", "gemini")) == 1


def test_a_refused_download_is_waited_for_not_poison(hostile: Callable[..., Emulator]) -> None:
    """A 403 (a key being rotated, a proxy's rule) more often than the poison bound allows: the job still completes."""
    emulator = hostile()
    emulator.add_fault(HttpFault(kind="status", status=403, method="GET", path=r"/content$", times=ATTEMPTS + 1))
    batch, results = run(OPENAI, timeout=120)
    assert batch.status is BatchStatus.COMPLETED
    accounted(batch, results)
    assert (batch.completed_count, batch.failed_count) == (10, 0)
    assert calls(emulator, "GET /v1/files/{file_id}/content") == ATTEMPTS + 2


@each_download
def test_a_content_length_that_lies_is_not_read_again_once_every_result_is_in(
    hostile: Callable[..., Emulator], file_mode: None, model: str, download: str, name: str
) -> None:
    """2 GB promised, the real body sent, the connection closed: the whole file was read, so the part is done."""
    emulator = hostile()
    emulator.add_fault(HttpFault(kind="lie_length", length=2_000_000_000, method="GET", path=download))
    batch, results = run(model)
    assert batch.status is BatchStatus.COMPLETED
    accounted(batch, results)
    assert (batch.completed_count, batch.failed_count) == (10, 0)
    assert calls(emulator, name) == 1


@pytest.mark.parametrize(
    ("model", "status_path", "name", "body"),
    [
        (OPENAI, r"/v1/batches/[^/]+$", "GET /v1/batches/{batch_id}", ["not", "a", "batch"]),
        (ANTHROPIC, r"/v1/messages/batches/[^/]+$", "GET /v1/messages/batches/{batch_id}", ["nope"]),
        (GEMINI, r"/v1beta/batches/[^/:]+$", "GET /v1beta/batches/{name}", "lots"),
    ],
    ids=["openai", "anthropic", "gemini"],
)
def test_a_status_body_that_is_not_a_batch_ends_the_part(
    hostile: Callable[..., Emulator], model: str, status_path: str, name: str, body: Any
) -> None:
    emulator = hostile()
    emulator.add_fault(HttpFault(kind="replace", method="GET", path=status_path, body=body))
    batch, results = run(model)
    assert batch.status is BatchStatus.FAILED
    accounted(batch, results)
    (message,) = errors(results)
    assert "not" in message and ("object" in message or "Batch" in message)
    assert created(emulator, model.partition(":")[0].replace("google", "gemini")) == 1


def test_unreadable_answers_apart_from_each_other_do_not_end_a_part(hostile: Callable[..., Emulator]) -> None:
    """Only answers unreadable one after another are poison: a readable one between them clears the count."""
    emulator = hostile()
    emulator.configure(stage_seconds=3.0)
    status_path = r"/v1/messages/batches/[^/]+$"
    emulator.add_fault(HttpFault(kind="replace", method="GET", path=status_path, body=["nope"], times=1))
    job = batch_create_sync(ANTHROPIC, ask(10), poll_interval=1.0, max_resubmissions=0)
    store = runtime_for(worker.app).store
    wait_for(lambda: store.part(job.id, 0).poll_poisoned == 0, "a readable poll after the unreadable one")
    emulator.clear_faults()  # (setting faults starts their use counts again: the spent one would strike twice)
    emulator.add_fault(HttpFault(kind="replace", method="GET", path=status_path, body=["nope"], times=1))
    batch, results = run_to_end(job.id)
    assert batch.status is BatchStatus.COMPLETED
    accounted(batch, results)
    assert calls(emulator, "GET /v1/messages/batches/{batch_id}") >= 4  # two unreadable, readable ones between


@pytest.mark.parametrize(
    ("model", "create_path"),
    [(OPENAI, r"^/v1/batches$"), (GEMINI, r":batchGenerateContent$")],
    ids=["openai", "gemini"],
)
def test_an_unreadable_create_answer_is_found_not_created_again(
    hostile: Callable[..., Emulator], model: str, create_path: str
) -> None:
    emulator = hostile(claim_timeout=0.5)
    emulator.add_fault(HttpFault(kind="replace", method="POST", path=create_path, body=[{"id": None}], times=1))
    batch, results = run(model)
    provider = model.partition(":")[0].replace("google", "gemini")
    assert created(emulator, provider) == 1  # the batch the unreadable answer hid was found by listing
    assert batch.status is BatchStatus.COMPLETED
    accounted(batch, results)
    assert (batch.completed_count, batch.failed_count) == (10, 0)


def test_a_listing_that_never_ends_ends_the_part_without_paying_twice(hostile: Callable[..., Emulator]) -> None:
    """The create answer is unreadable, and the listing that should find the batch pages on forever."""
    emulator = hostile(claim_timeout=0.5)
    emulator.add_fault(HttpFault(kind="replace", method="POST", path=r"^/v1/batches$", body=["created?"], times=1))
    stuck = {"object": "list", "data": [], "has_more": True, "last_id": "batch_same"}
    emulator.add_fault(HttpFault(kind="replace", method="GET", path=r"^/v1/batches$", body=stuck))
    batch, results = run(OPENAI)
    assert created(emulator, "openai") == 1
    assert batch.status is BatchStatus.FAILED
    accounted(batch, results)
    (message,) = errors(results)
    assert "not created again" in message and "seen before" in message
    assert calls(emulator, "GET /v1/batches") == 2 * ATTEMPTS  # per try: the first page, then the same cursor


def test_a_listing_whose_cursors_go_round_ends_the_part_without_paying_twice(hostile: Callable[..., Emulator]) -> None:
    """Cursors A, B, A, ...: no two pages in a row repeat one, and still the listing would never end."""
    emulator = hostile(claim_timeout=0.5)
    emulator.add_fault(HttpFault(kind="replace", method="POST", path=r"^/v1/batches$", body=["created?"], times=1))
    for cursor, times in (("batch_a", 1), ("batch_b", 1), ("batch_a", None)):
        page = {"object": "list", "data": [], "has_more": True, "last_id": cursor}
        emulator.add_fault(HttpFault(kind="replace", method="GET", path=r"^/v1/batches$", body=page, times=times))
    batch, results = run(OPENAI)
    assert created(emulator, "openai") == 1
    assert batch.status is BatchStatus.FAILED
    accounted(batch, results)
    assert "seen before" in next(iter(errors(results)))


@pytest.mark.parametrize(
    "answer",
    [
        {"id": "batch_x", "status": "failed", "errors": {"data": 5}},
        {"id": "batch_x", "status": "failed", "errors": {"data": {"code": "x"}}},
        {"id": "batch_x", "status": "failed", "errors": "boom"},
    ],
)
def test_an_openai_status_with_errors_of_the_wrong_shape_is_read(answer: dict[str, object]) -> None:
    snapshot = openai_to_snapshot(answer)
    assert (snapshot.id, snapshot.state) == ("batch_x", "failed")


def test_an_unreadable_anthropic_create_answer_ends_the_part_without_paying_twice(
    hostile: Callable[..., Emulator],
) -> None:
    emulator = hostile(claim_timeout=0.5)
    emulator.add_fault(HttpFault(kind="replace", method="POST", path=r"batches$", body=["created?"], times=1))
    batch, results = run(ANTHROPIC)
    assert created(emulator, "anthropic") == 1  # Anthropic batches cannot be listed: never created again
    assert batch.status is BatchStatus.FAILED
    accounted(batch, results)
    (message,) = errors(results)
    assert "not created again" in message and "not a Message Batch object" in message


@pytest.mark.parametrize(
    ("model", "path", "patch"),
    [
        (OPENAI, r"/v1/batches(/[^/]+)?$", {"request_counts": {"total": "lots", "completed": [1]}}),
        (ANTHROPIC, r"/v1/messages/batches(/[^/]+)?$", {"request_counts": {"succeeded": "lots"}}),
        (GEMINI, r"(/v1beta/batches/[^/:]+|:batchGenerateContent)$", {"metadata": {"batchStats": "lots"}}),
    ],
    ids=["openai", "anthropic", "gemini"],
)
def test_counts_that_are_not_numbers_do_not_stop_a_batch(
    hostile: Callable[..., Emulator], model: str, path: str, patch: dict[str, Any]
) -> None:
    """The crash after create that orphaned the paid batch: now the id is recorded and the job runs to its end."""
    emulator = hostile()
    emulator.add_fault(HttpFault(kind="patch", path=path, body=patch))
    batch, results = run(model)
    assert created(emulator, model.partition(":")[0].replace("google", "gemini")) == 1
    assert batch.status is BatchStatus.COMPLETED
    accounted(batch, results)
    assert (batch.completed_count, batch.failed_count) == (10, 0)


# -- a real worker ----------------------------------------------------------------------------------------------------
@pytest.mark.redis
def test_poison_and_a_foreign_results_url_through_a_real_worker(
    redis_url: str, emulator: Emulator, foreign: Foreign, tmp_path: Path
) -> None:
    """The default bound (5 tries, the task's back-off between them), and no key to a foreign origin, in a real
    `celery worker` with its own environment."""
    setup = make_real_setup(redis_url, max_poll_interval=1)
    worker.use_app(setup.app)
    process = WorkerProcess({**setup.env, **provider_env(emulator)}, tmp_path / "worker.log")
    try:
        emulator.add_fault(HttpFault(kind="status", status=404, provider="openai", method="GET", path=r"/content$"))
        emulator.add_fault(
            HttpFault(
                kind="patch",
                provider="anthropic",
                method="GET",
                path=r"batches/[^/]+$",
                body={"results_url": f"{foreign.url}/results"},
            )
        )
        jobs = {
            model: batch_create_sync(model, ask(10), poll_interval=0.2, max_resubmissions=0)
            for model in (OPENAI, ANTHROPIC)
        }
        every_job_ended = lambda: all(batch_status_sync(job.id).is_complete for job in jobs.values())  # noqa: E731
        wait_for(every_job_ended, "every job to end", timeout=120, interval=0.2, log=process)
        for model, job in jobs.items():
            batch, results = batch_status_sync(job.id), batch_results_sync(job.id)
            assert batch.status is BatchStatus.FAILED, model
            assert batch.completed_count + batch.failed_count == 10 == len(results)
            (message,) = errors(results)
            assert ("404" in message) if model == OPENAI else ("BATCHLINE_TRUSTED_RESULT_HOSTS" in message)
        assert calls(emulator, "GET /v1/files/{file_id}/content") == pipeline.POISON_ATTEMPTS == 5
        assert (created(emulator, "openai"), created(emulator, "anthropic")) == (1, 1)
        assert foreign.seen == []
    finally:
        worker._current = None
        process.stop()
        setup.cleanup()


def test_a_cancel_answer_that_cannot_be_read_does_not_stop_the_job_ending(hostile: Callable[..., Emulator]) -> None:
    """The provider cancels but answers the cancel call with something unreadable: the polls see the batch end."""
    emulator = hostile()
    emulator.configure(stage_seconds=2.0)  # the batch is still running when the cancel comes
    emulator.add_fault(HttpFault(kind="replace", method="POST", path=r"/cancel$", body=["not", "a", "batch"]))
    job = batch_create_sync(OPENAI, ask(10), poll_interval=0.1, max_resubmissions=0)
    batch_cancel_sync(job)
    batch, results = run_to_end(job.id, timeout=60)
    assert batch.status is BatchStatus.CANCELLED
    accounted(batch, results)
    assert calls(emulator, "POST /v1/batches/{batch_id}/cancel") >= 1

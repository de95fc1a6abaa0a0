"""The OpenAI adapter's worker side: the Batch API over HTTP, for api.openai.com and compatible hosts
(`OPENAI_BASE_URL`).

The input file is uploaded, then a batch created on it; one model per batch, so the model is the group. Every batch
carries metadata naming its job and part, which lets `find` recover a batch whose id was lost. Results stream from the
output and error files line by line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import suppress
from typing import Any, ClassVar

from ...errors import MalformedAnswer, ProviderRejected, TransientProviderError
from ...records import ReadResult
from .._jsonl import iter_json_lines, spooled
from ..base import Snapshot, json_answer, path_id
from ..http import HTTPTransport
from . import wire


class OpenAITransport(HTTPTransport):
    name: ClassVar[str] = "openai"
    can_find = True
    batches_path = wire.BATCHES

    def client_config(self, environ: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        return client_config(environ)

    def to_snapshot(self, batch: object) -> Snapshot:
        return wire.to_snapshot(batch)

    def create(
        self, job_id: str, part: int, requests: Iterable[tuple[str, bytes]], count: int, group: str = ""
    ) -> Snapshot:
        http = self.http
        endpoint = self.endpoint_of(group)
        with spooled(self.input_lines(requests, endpoint)) as (file, _):
            file_id = self.upload(file, input_file_name(job_id, part))
        body = self.batch_body(file_id, endpoint, job_id, part)
        try:
            answer = http.request("POST", self.batches_path, json=body, idempotent=False)
            created = self.created_snapshot(answer.content)
        except ProviderRejected:
            self._delete_file(file_id)  # refused: no batch will ever read it
            raise
        # The answer always says `validating`; one read shows at once a batch that already failed or finished.
        try:
            return self.status(created.id)
        except (TransientProviderError, ProviderRejected):
            return created

    # -- what an OpenAI-compatible API (Groq, Together, Azure: `openai_compat`) does its own way ------------------
    def endpoint_of(self, group: str) -> str:
        return wire.endpoint_of(group)

    def input_lines(self, requests: Iterable[tuple[str, bytes]], endpoint: str) -> Iterator[bytes]:
        return wire.input_lines(requests, endpoint)

    def upload(self, file: Any, name: str) -> str:
        """Upload the input file; its id."""
        upload = {"file": (name, file, "application/jsonl")}
        uploaded = _json(self.http.request("POST", "/files", data={"purpose": "batch"}, files=upload).content)
        return path_id(uploaded.get("id") if isinstance(uploaded, dict) else None, "an input file id", self.name)

    def batch_body(self, file_id: str, endpoint: str, job_id: str, part: int) -> dict[str, Any]:
        return {
            "input_file_id": file_id,
            "endpoint": endpoint,
            "completion_window": "24h",
            "metadata": {"batchline_job": job_id, "batchline_part": str(part)},
        }

    def created_snapshot(self, content: bytes) -> Snapshot:
        return wire.created_snapshot(content)

    def find(self, job_id: str, part: int) -> Snapshot | None:
        after: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, str | int] = {"limit": wire.FIND_PAGE, **({"after": after} if after else {})}
            page = _json(self.http.request("GET", self.batches_path, params=params).content)
            if not isinstance(page, dict):
                raise MalformedAnswer("openai: the list of batches is not a JSON object")
            listed = page.get("data")
            for batch in listed if isinstance(listed, list) else []:
                metadata = batch.get("metadata") if isinstance(batch, dict) else None
                if not isinstance(metadata, dict):
                    continue
                if metadata.get("batchline_job") == job_id and metadata.get("batchline_part") == str(part):
                    return self.to_snapshot(batch)
            last = page.get("last_id")
            if not page.get("has_more") or not last:
                return None
            if not isinstance(last, str) or last in seen:  # a cursor that comes round again would list forever
                raise MalformedAnswer(f"openai: the list of batches pages on with a cursor seen before ({last!r})")
            seen.add(last)
            after = last

    def read_results(self, batch: Snapshot) -> Iterator[ReadResult]:
        if not batch.ended:  # a stale snapshot (a poll raced the one that saw the end): ask again
            batch = self.status(batch.id)
        for key in ("output_file_id", "error_file_id"):
            file_id = batch.details.get(key)
            if not file_id:  # `""` is no file too
                continue
            file_id = path_id(file_id, f"an {key.removesuffix('_id').replace('_', ' ')} id", self.name)
            with self.http.stream("GET", f"/files/{file_id}/content") as response:
                for line in iter_json_lines(response, f"openai: file {file_id}"):
                    yield wire.read_result(line)

    def unrun(self, batch: Snapshot) -> tuple[str, bytes]:
        """Expired and cancelled as such; a failed batch gives each request the errors pydantic-ai would."""
        if batch.state in ("expired", "cancelled"):
            return super().unrun(batch)
        return "errored", wire.unrun_error(batch)

    def cleanup(self, batch: Snapshot) -> None:
        if not self.context.settings.cleanup_files:
            return
        for key in ("input_file_id", "output_file_id", "error_file_id"):
            if file_id := batch.details.get(key):
                self._delete_file(file_id)

    def _delete_file(self, file_id: str) -> None:
        # Best effort: a file left behind costs storage only, and OpenAI deletes it after 30 days.
        with suppress(TransientProviderError, ProviderRejected):
            self.http.request("DELETE", f"/files/{path_id(file_id, 'file id', self.name)}")


def input_file_name(job_id: str, part: int) -> str:
    """The input file's name: it names the job and part, so a batch whose id was lost can be found by its file."""
    return f"batchline-{job_id}-{part}.jsonl"


def client_config(environ: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """Base URL and headers from the SDK's environment names. The key is checked before any HTTP call."""
    key = environ.get("OPENAI_API_KEY", "").strip()
    if not key:
        raise ProviderRejected(
            "OPENAI_API_KEY is not set in the worker's environment; the openai adapter needs it for the Batch API.",
            401,
        )
    base_url = environ.get("OPENAI_BASE_URL", "").strip() or wire.DEFAULT_BASE_URL
    headers = {"Authorization": f"Bearer {key}"}
    if ".azure.com" in base_url:
        headers["api-key"] = key  # Azure OpenAI reads its keys from this header
    if organization := environ.get("OPENAI_ORG_ID"):
        headers["OpenAI-Organization"] = organization
    if project := environ.get("OPENAI_PROJECT_ID"):
        headers["OpenAI-Project"] = project
    return base_url, headers


def _json(content: bytes) -> Any:
    return json_answer(content, "openai")

"""The Mistral adapter's worker side: Mistral's batch API over HTTP, for api.mistral.ai (`MISTRAL_BASE_URL`).

The input file is uploaded with purpose `batch`, then a job created on it; a job runs one model, so the model is the
group. Every job carries metadata naming its batchline job and part, which lets `find` recover a job whose id was
lost between create and record. Results stream from the output and error files line by line.
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


class MistralTransport(HTTPTransport):
    name: ClassVar[str] = "mistral"
    can_find = True
    batches_path = wire.JOBS

    def client_config(self, environ: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        return client_config(environ)

    def to_snapshot(self, batch: object) -> Snapshot:
        return wire.to_snapshot(batch)

    def create(
        self, job_id: str, part: int, requests: Iterable[tuple[str, bytes]], count: int, group: str = ""
    ) -> Snapshot:
        http = self.http
        model = group or self.model_name
        with spooled(wire.input_lines(requests)) as (file, _):
            upload = {"file": (f"batchline-{job_id}-{part}.jsonl", file, "application/jsonl")}
            uploaded = _json(http.request("POST", wire.FILES, data={"purpose": "batch"}, files=upload).content)
        file_id = path_id(uploaded.get("id") if isinstance(uploaded, dict) else None, "an input file id", self.name)
        body = wire.job_body(file_id, model, job_id, part)
        try:
            created = wire.created_snapshot(http.request("POST", wire.JOBS, json=body, idempotent=False).content)
        except ProviderRejected:
            self._delete_file(file_id)  # refused: no job will ever read it
            raise
        try:  # the answer says QUEUED; one read shows at once a job that already failed
            return self.status(created.id)
        except (TransientProviderError, ProviderRejected):
            return created

    def find(self, job_id: str, part: int) -> Snapshot | None:
        """The job made for this part, by its metadata, among the newest jobs (pages of `FIND_PAGE`, newest first)."""
        for page in range(wire.FIND_PAGES):
            params: dict[str, str | int] = {"page": page, "page_size": wire.FIND_PAGE, "order_by": "-created"}
            answer = _json(self.http.request("GET", wire.JOBS, params=params).content)
            if not isinstance(answer, dict):
                raise MalformedAnswer("mistral: the list of batch jobs is not a JSON object")
            listed = answer.get("data")
            jobs = listed if isinstance(listed, list) else []
            for job in jobs:
                if wire.is_ours(job, job_id, part):
                    return wire.to_snapshot(job)
            total = answer.get("total")
            if not jobs or (isinstance(total, int) and (page + 1) * wire.FIND_PAGE >= total):
                return None
        raise MalformedAnswer(
            f"mistral: no job of part {part} among the newest {wire.FIND_PAGES * wire.FIND_PAGE} listed; "
            "the search is not taken as proof that none was created"
        )

    def read_results(self, batch: Snapshot) -> Iterator[ReadResult]:
        if not batch.ended:  # a stale snapshot (a poll raced the one that saw the end): ask again
            batch = self.status(batch.id)
        for key in ("output_file", "error_file"):
            file_id = batch.details.get(key)
            if not file_id:
                continue
            file_id = path_id(file_id, f"an {key.replace('_', ' ')} id", self.name)
            with self.http.stream("GET", f"{wire.FILES}/{file_id}/content") as response:
                for line in iter_json_lines(response, f"mistral: file {file_id}"):
                    yield wire.read_result(line)

    def unrun(self, batch: Snapshot) -> tuple[str, bytes]:
        """Timed out and cancelled as such; a failed job gives each request its errors."""
        if batch.state in ("expired", "cancelled"):
            return super().unrun(batch)
        return "errored", wire.unrun_error(batch)

    def cleanup(self, batch: Snapshot) -> None:
        if not self.context.settings.cleanup_files:
            return
        files = [
            *batch.details.get("input_files", []),
            batch.details.get("output_file"),
            batch.details.get("error_file"),
        ]
        for file_id in files:
            if file_id:
                self._delete_file(file_id)

    def _delete_file(self, file_id: str) -> None:
        # Best effort: a file left behind costs storage only.
        with suppress(TransientProviderError, ProviderRejected):
            self.http.request("DELETE", f"{wire.FILES}/{path_id(file_id, 'file id', self.name)}")


def client_config(environ: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """Base URL and headers from the SDK's environment names. The key is checked before any HTTP call."""
    key = environ.get("MISTRAL_API_KEY", "").strip()
    if not key:
        raise ProviderRejected(
            "MISTRAL_API_KEY is not set in the worker's environment; the mistral adapter needs it for the batch API.",
            401,
        )
    base_url = environ.get("MISTRAL_BASE_URL", "").strip() or wire.DEFAULT_BASE_URL
    return base_url, {"Authorization": f"Bearer {key}"}


def _json(content: bytes) -> Any:
    return json_answer(content, "mistral")

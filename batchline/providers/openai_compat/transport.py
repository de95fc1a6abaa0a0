"""The worker side of the OpenAI-compatible batch APIs: the OpenAI transport, told each one's differences.

Crash between create and record: Groq and Azure batches keep the metadata naming the job and part, so `find` lists
them as it does OpenAI's. Together's keep none: there `find` looks for the input file by its name (which names the job
and part) and the batch that reads it. A batch found either way is recorded and never created twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ...errors import MalformedAnswer, ProviderRejected
from ..base import Snapshot, json_answer, path_id
from ..openai import wire
from ..openai.transport import OpenAITransport, input_file_name
from .flavours import AZURE_API_VERSION, Flavour


class CompatTransport(OpenAITransport):
    flavour: Flavour

    # -- configuration --------------------------------------------------------------------------------------------
    def client_config(self, environ: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        return client_config(self.flavour, environ)

    def client_params(self, environ: Mapping[str, str]) -> dict[str, str]:
        if self.flavour.bearer:
            return {}
        return {"api-version": environ.get("OPENAI_API_VERSION", "").strip() or AZURE_API_VERSION}

    # -- requests -------------------------------------------------------------------------------------------------
    def endpoint_of(self, group: str) -> str:
        return self.flavour.endpoint

    def input_lines(self, requests: Iterable[tuple[str, bytes]], endpoint: str) -> Iterator[bytes]:
        return wire.input_lines(requests, endpoint)

    def upload(self, file: Any, name: str) -> str:
        flavour = self.flavour
        data = {"purpose": flavour.upload_purpose}
        if flavour.name == "together":  # Together's upload names the file and its type in fields of their own
            data |= {"file_name": name, "file_type": "jsonl"}
        upload = {"file": (name, file, "application/jsonl")}
        answer = self.http.request("POST", flavour.upload_path, data=data, files=upload).content
        uploaded = json_answer(answer, self.name)
        return path_id(uploaded.get("id") if isinstance(uploaded, dict) else None, "an input file id", self.name)

    def batch_body(self, file_id: str, endpoint: str, job_id: str, part: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "input_file_id": file_id,
            "endpoint": endpoint,
            "completion_window": self.flavour.completion_window,
        }
        if self.flavour.keeps_metadata:
            body["metadata"] = {"batchline_job": job_id, "batchline_part": str(part)}
        return body

    # -- batches --------------------------------------------------------------------------------------------------
    def created_snapshot(self, content: bytes) -> Snapshot:
        if self.flavour.name != "together":
            return wire.created_snapshot(content)
        answer = json_answer(content, self.name)
        if isinstance(answer, dict) and isinstance(answer.get("job"), dict):
            answer = answer["job"]  # Together wraps the batch it created
        try:  # once the answer names the batch, it must reach the store (as `base.created_snapshot_of`)
            return self.to_snapshot(answer)
        except MalformedAnswer:
            batch_id = answer.get("id") if isinstance(answer, dict) else None
            if not isinstance(batch_id, str) or not batch_id:
                raise
            return Snapshot(id=batch_id, status="unreadable", state="running")

    def to_snapshot(self, batch: object) -> Snapshot:
        if self.flavour.name != "together":
            return wire.to_snapshot(batch)
        return together_snapshot(batch, self.flavour)

    def find(self, job_id: str, part: int) -> Snapshot | None:
        if self.flavour.keeps_metadata:
            return super().find(job_id, part)
        return self._find_by_input_file(input_file_name(job_id, part))

    def _find_by_input_file(self, name: str) -> Snapshot | None:
        """The batch reading the input file called `name`; None when no such file or batch exists (the file was
        uploaded but no batch created: the next create uploads anew)."""
        listed = json_answer(self.http.request("GET", "/files").content, self.name)
        files = listed.get("data") if isinstance(listed, dict) else listed
        if not isinstance(files, list):
            raise MalformedAnswer(f"{self.name}: the list of files is not a list")
        ids = {f.get("id") for f in files if isinstance(f, dict) and f.get("filename") == name}
        if not ids:
            return None
        batches = json_answer(self.http.request("GET", self.batches_path).content, self.name)
        if isinstance(batches, dict):
            batches = batches.get("data")
        if not isinstance(batches, list):
            raise MalformedAnswer(f"{self.name}: the list of batches is not a list")
        for batch in batches:
            if isinstance(batch, dict) and batch.get("input_file_id") in ids:
                return self.to_snapshot(batch)
        return None


def together_snapshot(batch: object, flavour: Flavour) -> Snapshot:
    """A Together batch job as a `Snapshot`: upper-case statuses, an `error` string, no request counts."""
    if not isinstance(batch, dict) or not isinstance(batch.get("id"), str) or not batch["id"]:
        raise MalformedAnswer(f"together: a batch answer is not a batch job ({type(batch).__name__})")
    status = batch.get("status")
    if not isinstance(status, str):
        raise MalformedAnswer(f"together: batch {batch['id'][:80]!r} answered without a status")
    state = flavour.states.get(status.upper(), "running")
    details = {
        key: batch[key]
        for key in ("input_file_id", "output_file_id", "error_file_id")
        if isinstance(batch.get(key), str) and batch[key]
    }
    error = batch.get("error") if isinstance(batch.get("error"), str) and batch.get("error") else None
    if error and state == "failed":
        details["errors"] = [{"code": "batch_failed", "message": error}]
    failed = error if state == "failed" else None
    return Snapshot(id=batch["id"], status=status, state=state, error=failed, details=details)


def client_config(flavour: Flavour, environ: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """Base URL and headers from the provider's SDK's environment names. The key is checked before any HTTP call."""
    key = environ.get(flavour.key_variable, "").strip()
    if not key:
        raise ProviderRejected(
            f"{flavour.key_variable} is not set in the worker's environment; the {flavour.name} adapter needs it.", 401
        )
    configured = environ.get(flavour.base_url_variable, "").strip().rstrip("/")
    if not configured and not flavour.default_base_url:
        raise ProviderRejected(
            f"{flavour.base_url_variable} is not set in the worker's environment; the {flavour.name} adapter needs "
            "the resource's endpoint (https://<resource>.openai.azure.com).",
            401,
        )
    base_url = (configured or flavour.default_base_url) + flavour.url_suffix
    headers = {"Authorization": f"Bearer {key}"} if flavour.bearer else {"api-key": key}
    return base_url, headers

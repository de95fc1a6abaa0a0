"""The Gemini API's REST calls batchline makes: batches, the resumable Files upload, streamed downloads.

Keys come from the worker's environment under google-genai's names (`GOOGLE_API_KEY`, else `GEMINI_API_KEY`; the SDK
prefers the first when both are set) and travel only in the `x-goog-api-key` header, never in a URL, so no error
message or log line can show one. `GOOGLE_GEMINI_BASE_URL` points the calls elsewhere (a proxy, the emulator).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

import httpx2
import orjson

from ...errors import MalformedAnswer, ProviderRejected, TransientProviderError
from ..base import as_dict, path_id
from ..endpoints import Endpoint, endpoint_config
from ..http import ProviderHTTP

KEY_VARIABLES = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
BASE_URL_VARIABLE = "GOOGLE_GEMINI_BASE_URL"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
API = "/v1beta"

UPLOAD_CHUNK = 8 * 1024 * 1024
"""Bytes per upload request, as google-genai sends them."""
UPLOAD_ATTEMPTS = 3
"""Whole uploads tried before a create gives up for now: a new upload session is cheap, a stuck part is not."""
LIST_PAGE = 100
_JSON_BODY = {"content-type": "application/json"}


def credentials(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """`(api_key, base_url)` from the environment; a missing key is a refusal that names the variables to set."""
    env = os.environ if environ is None else environ
    key = next((value for name in KEY_VARIABLES if (value := env.get(name, "").strip())), "")
    if not key:
        raise ProviderRejected(
            "gemini: no API key in the worker's environment; set GEMINI_API_KEY (or GOOGLE_API_KEY).", 401
        )
    return key, (env.get(BASE_URL_VARIABLE) or DEFAULT_BASE_URL).strip().rstrip("/")


class GeminiAPI:
    """One HTTP client per process; it is made again when the environment's key or base URL changes."""

    def __init__(self, transport: httpx2.BaseTransport | None = None, trusted: Iterable[str] = ()) -> None:
        self._transport = transport
        self._trusted = tuple(trusted)
        """Origins besides the base URL's that upload URLs may name (`BATCHLINE_TRUSTED_RESULT_HOSTS`)."""
        self._http: ProviderHTTP | None = None
        self._made_for: tuple[str, str] | None = None
        self._endpoint: Endpoint | None = None
        self._trusted_bases: tuple[str, ...] = ()

    def use_endpoint(self, endpoint: Endpoint, trusted_bases: Iterable[str]) -> None:
        """Call a job's own base URL (a `GoogleModel`'s), once it is one the worker trusts with its key."""
        self._endpoint, self._trusted_bases = endpoint, tuple(trusted_bases)
        self._made_for = None

    @property
    def http(self) -> ProviderHTTP:
        wanted = credentials()
        if self._http is None or wanted != self._made_for:
            if self._http is not None:
                self._http.close()
            key, base_url = wanted
            headers = {"x-goog-api-key": key}
            if self._endpoint is not None:
                base_url, headers = endpoint_config("gemini", self._endpoint, base_url, headers, self._trusted_bases)
                base_url = base_url.rstrip("/")
            self._http = ProviderHTTP("gemini", base_url, headers, transport=self._transport, trusted=self._trusted)
            self._made_for = wanted
        return self._http

    # -- batches ----------------------------------------------------------------------------------------------------
    def create_batch(self, model: str, body: bytes) -> dict[str, Any]:
        # Never retried here: a lost answer may hide a created batch, which the pipeline finds by listing.
        response = self.http.request(
            "POST", f"{API}/{model}:batchGenerateContent", content=body, headers=_JSON_BODY, idempotent=False
        )
        return _json(response)

    def create_embed_batch(self, model: str, body: bytes) -> dict[str, Any]:
        """`create_batch` for embedding inputs: the same body shape, to `asyncBatchEmbedContent`."""
        response = self.http.request(
            "POST", f"{API}/{model}:asyncBatchEmbedContent", content=body, headers=_JSON_BODY, idempotent=False
        )
        return _json(response)

    def get_batch(self, name: str) -> dict[str, Any]:
        return _json(self.http.request("GET", f"{API}/{resource(name, 'batches')}"))

    def cancel_batch(self, name: str) -> None:
        self.http.request("POST", f"{API}/{resource(name, 'batches')}:cancel", content=b"{}", headers=_JSON_BODY)

    def batches(self) -> Iterator[dict[str, Any]]:
        """Every batch the key's project has, newest first, a page at a time."""
        token, seen = "", set[str]()
        while True:
            params: dict[str, str | int] = {"pageSize": LIST_PAGE}
            if token:
                params["pageToken"] = token
            page = _json(self.http.request("GET", f"{API}/batches", params=params))
            listed = page.get("operations")
            yield from (op for op in (listed if isinstance(listed, list) else []) if isinstance(op, dict))
            token = str(page.get("nextPageToken") or "")
            if not token:
                return
            if token in seen:  # a page token that comes round again would list forever
                raise MalformedAnswer("gemini: the list of batches pages on with a token seen before")
            seen.add(token)

    # -- files ------------------------------------------------------------------------------------------------------
    def upload(self, file: IO[bytes], size: int, display_name: str) -> str:
        """Upload `size` bytes of JSONL from `file` with the resumable protocol; answer the file's name."""
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            try:
                return self._upload_once(file, size, display_name)
            except TransientProviderError:
                if attempt == UPLOAD_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _upload_once(self, file: IO[bytes], size: int, display_name: str) -> str:
        http = self.http
        start = http.request(
            "POST",
            f"/upload{API}/files",
            headers={
                "x-goog-upload-protocol": "resumable",
                "x-goog-upload-command": "start",
                "x-goog-upload-header-content-length": str(size),
                "x-goog-upload-header-content-type": "application/jsonl",
                **_JSON_BODY,
            },
            content=orjson.dumps({"file": {"displayName": display_name, "mimeType": "application/jsonl"}}),
        )
        url = start.headers.get("x-goog-upload-url")
        if not url:
            raise TransientProviderError("gemini: the upload start answered without an upload URL")
        # Followed only on the base URL's origin or a trusted one (ProviderHTTP refuses others, sending nothing).
        file.seek(0)
        offset = 0
        while True:
            chunk = file.read(UPLOAD_CHUNK)
            last = offset + len(chunk) >= size
            # A chunk is not retried on its own: had it arrived, its offset would now be wrong. The whole upload is.
            answer = http.request(
                "POST",
                url,
                headers={
                    "x-goog-upload-command": "upload, finalize" if last else "upload",
                    "x-goog-upload-offset": str(offset),
                },
                content=chunk,
                idempotent=False,
            )
            offset += len(chunk)
            if last:
                break
            if answer.headers.get("x-goog-upload-status") not in (None, "active"):
                raise TransientProviderError("gemini: the upload session ended before the file was complete")
        name = as_dict(_json(answer).get("file")).get("name")
        if answer.headers.get("x-goog-upload-status", "final") != "final" or not isinstance(name, str):
            raise TransientProviderError("gemini: the upload did not end with a stored file")
        return name

    def delete_file(self, name: str) -> None:
        self.http.request("DELETE", f"{API}/{resource(name, 'files')}")

    def file_lines(self, name: str) -> Iterator[bytes]:
        """The lines of a results file, streamed. A download shorter than its Content-Length raises (a transient
        error: it is read again); a body that is whole gives its last line as it is, counted as an anomaly by the
        caller if it is not a result."""
        path = f"{API}/{resource(name, 'files')}:download"
        with self.http.stream("GET", path, params={"alt": "media"}) as response:
            buffer = bytearray()
            for chunk in response.iter_bytes():
                buffer += chunk
                end = buffer.rfind(b"\n")
                if end >= 0:
                    yield from (line for line in bytes(buffer[:end]).split(b"\n") if line.strip())
                    del buffer[: end + 1]
        if bytes(buffer).strip():  # the body is whole (a short one raises above): a last line is the provider's own
            yield bytes(buffer)


def _json(response: httpx2.Response) -> dict[str, Any]:
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise MalformedAnswer(f"gemini: {response.request.url.path} answered with something not JSON") from None
    if not isinstance(data, dict):
        raise MalformedAnswer(
            f"gemini: {response.request.url.path} answered a JSON {type(data).__name__}, not an object"
        )
    return data


def resource(name: object, collection: str) -> str:
    """`batches/<id>` or `files/<id>` as a path, the id checked: `../`, `?` or `/` in it cannot change the path."""
    tail = name.removeprefix(f"{collection}/") if isinstance(name, str) else name
    return f"{collection}/{path_id(tail, f'a {collection[:-1]} name', 'gemini')}"

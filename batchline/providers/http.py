"""One httpx2 client per adapter and process (`ProviderHTTP`): timeouts, and retries that honour the provider's
`Retry-After`; and `HTTPTransport`, the worker side the OpenAI and Anthropic adapters build on it.

Retried: 408, 409, 429, 5xx and dropped connections, as the providers' SDKs retry them. A request that creates
something paid (`idempotent=False`) is never retried here: it may have gone through before the connection dropped,
so the pipeline's claim-and-find decides instead. Errors never carry a header, so never the API key.

The headers (the API key) go only to the base URL's origin and the origins the operator trusts
(`BATCHLINE_TRUSTED_RESULT_HOSTS`): a URL the provider hands back that points elsewhere is refused before anything
is sent. Redirects are never followed (httpx's default), so a 3xx cannot lead the key away either.
"""

from __future__ import annotations

import abc
import email.utils
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx2

from ..errors import BrokenDownload, HostileAnswer, ProviderRejected, TransientProviderError
from ..trusted_urls import listed_for
from .base import ProviderContext, Snapshot, TransportBase, json_answer, path_id
from .endpoints import Endpoint, endpoint_config, origin_of

TRUSTED_SETTING = "BATCHLINE_TRUSTED_RESULT_HOSTS"

# httpx2 logs every request's whole URL at INFO, which workers run at: a base URL's password, an upload session's id.
logging.getLogger("httpx2").setLevel(max(logging.WARNING, logging.getLogger("httpx2").level))

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
TIMEOUT = httpx2.Timeout(120.0, connect=10.0)
MAX_INLINE_WAIT = 5.0
"""The longest back-off slept inside a task; a longer Retry-After is honoured by retrying the task later."""


def shown(url: str) -> str:
    """A URL as errors name it: its origin and path, never its query (a resumable upload's session id) nor the
    user and password a base URL may carry."""
    parts = urlsplit(url)
    return (origin_of(url) if parts.netloc else "") + parts.path


def sendable(provider: str, headers: Mapping[str, str]) -> dict[str, str]:
    """`headers`, once each value is one HTTP can carry: visible ASCII and spaces. A key pasted with a curly quote, a
    zero-width space or a line break made httpx raise an error whose text held the whole header, the key with it,
    which went on to the worker's log, Flower and the result backend. The error here names the header alone."""
    for name, value in headers.items():
        if not all(" " <= char <= "~" or char == "\t" for char in value):
            raise ProviderRejected(
                f"{provider}: the {name} header, from the worker's environment (its API key or another setting) or "
                "the job's own endpoint, holds a character HTTP cannot carry (not ASCII, or a control character such "
                "as a line break, often from a paste): set that value again",
                401,
            )
    return dict(headers)


class ProviderHTTP:
    def __init__(
        self,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        *,
        attempts: int = 4,
        backoff: float = 0.5,
        transport: httpx2.BaseTransport | None = None,
        trusted: Iterable[str] = (),
        params: Mapping[str, str] | None = None,
    ) -> None:
        self.provider = provider
        self.origin = origin_of(base_url)
        self.trusted = frozenset({self.origin, *(origin_of(o) for o in trusted)})
        self.attempts = attempts
        self.backoff = backoff
        self.client = httpx2.Client(
            base_url=base_url.rstrip("/"),
            headers=sendable(provider, headers),
            params=dict(params or {}),  # sent on every call (Azure's `api-version`)
            timeout=TIMEOUT,
            transport=transport,
        )

    def request(self, method: str, url: str, *, idempotent: bool = True, **kwargs: Any) -> httpx2.Response:
        """Send a request and return its successful response, retrying what the provider asks to be retried."""
        self.check_origin(url)
        attempts = self.attempts if idempotent else 1
        for attempt in range(1, attempts + 1):
            try:
                response = self.client.request(method, url, **kwargs)
            except httpx2.TransportError as error:
                if attempt == attempts:
                    raise TransientProviderError(
                        f"{self.provider}: {type(error).__name__} on {method} {shown(url)}"
                    ) from None
                time.sleep(self.backoff * 2 ** (attempt - 1))
                continue
            if response.is_success:
                return response
            self.raise_for(response, method, url, last=attempt == attempts)
            wait = retry_after(response) or self.backoff * 2 ** (attempt - 1)
            if wait > MAX_INLINE_WAIT:
                # A long wait must not hold a worker slot: the task comes back after it, by countdown.
                raise TransientProviderError(f"{self.provider}: {method} {shown(url)} asked to wait {wait:.0f}s", wait)
            time.sleep(wait)
        raise AssertionError("unreachable")

    @contextmanager
    def stream(self, method: str, url: str, **kwargs: Any) -> Iterator[httpx2.Response]:
        """A streamed response; a body that ends before its `Content-Length` is a `BrokenDownload`, never trusted.

        A failure before the answer began (no connection) is an ordinary transient error; one after it began, in the
        body, is a `BrokenDownload`, which the pipeline retries only a bounded number of times.
        """
        self.check_origin(url)
        began = False
        try:
            with self.client.stream(method, url, **kwargs) as response:
                began = True
                if not response.is_success:
                    response.read()
                    self.raise_for(response, method, url, last=True)
                yield response
        except (httpx2.TransportError, httpx2.StreamError) as error:
            kind = BrokenDownload if began else TransientProviderError
            raise kind(
                f"{self.provider}: the download of {shown(url)} broke off ({type(error).__name__}); it is read again"
            ) from None

    def check_origin(self, url: str) -> None:
        """Refuse, before anything is sent, a URL on an origin that is neither the base URL's nor a trusted one."""
        parts = urlsplit(url)
        if not parts.netloc and not parts.scheme:
            return  # a path: it joins the base URL
        origin = origin_of(url)
        if origin not in self.trusted:
            raise HostileAnswer(
                f"{self.provider}: the provider pointed batchline at {origin}, which is not the origin of its base URL "
                f"({self.origin}) nor listed in {TRUSTED_SETTING}; nothing was sent there"
            )

    def raise_for(self, response: httpx2.Response, method: str, url: str, *, last: bool) -> None:
        """Raise for a failed response: rejected for good, or transient once the retries are spent."""
        status = response.status_code
        said = f"{self.provider}: {method} {shown(url)} answered {status}"
        message = f"{said}: {error_message(response)}"
        if status not in RETRY_STATUSES and response.headers.get("x-should-retry") != "true":
            raise ProviderRejected(message, status, loggable=said)
        if last:
            raise TransientProviderError(message, retry_after(response), loggable=said)

    def close(self) -> None:
        self.client.close()


MAX_RETRY_AFTER = 3600.0
"""The longest wait a provider's `retry-after` is taken at: a hostile one (`inf`, a year) must not park a job."""


def retry_after(response: httpx2.Response) -> float | None:
    """The wait the provider asked for: `retry-after-ms`, or `retry-after` in seconds or as an HTTP date; at most
    `MAX_RETRY_AFTER`, and None for one that is not a time (`nan`, negative, unreadable)."""
    if (ms := response.headers.get("retry-after-ms")) is not None:
        try:
            return _sane(float(ms) / 1000)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return _sane(float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return _sane(max(0.0, when.timestamp() - time.time())) if when else None


def _sane(seconds: float) -> float | None:
    return min(seconds, MAX_RETRY_AFTER) if math.isfinite(seconds) and seconds >= 0 else None


def error_message(response: httpx2.Response) -> str:
    """The provider's own error message (`{"error": {"message": ...}}`, or Mistral's flat `message`), else the status
    text."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "error"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        nested = error.get("error")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else error  # Anthropic nests it
        return str(inner.get("message") or inner.get("type") or error)
    if isinstance(body, dict) and isinstance(body.get("message"), str):  # Mistral's flat `{"object": "error", ...}`
        return str(body["message"])
    return response.reason_phrase or "error"


class HTTPTransport(TransportBase):
    """The worker side OpenAI and Anthropic share: a `ProviderHTTP` made from the environment on first use, and the
    status and cancel calls on `{batches_path}/{id}`."""

    batches_path: ClassVar[str]

    def __init__(self, model_name: str, context: ProviderContext | None = None) -> None:
        super().__init__(model_name, context)
        self._http: ProviderHTTP | None = None
        self._endpoint: Endpoint | None = None

    def use_endpoint(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._http = None

    @abc.abstractmethod
    def client_config(self, environ: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """Base URL and headers from the SDK's environment names; a missing key is refused before any call."""

    def client_params(self, environ: Mapping[str, str]) -> dict[str, str]:
        """Query parameters every call carries (none but Azure's `api-version`)."""
        return {}

    @abc.abstractmethod
    def to_snapshot(self, batch: object) -> Snapshot:
        """A batch object of the provider's as a `Snapshot`; `MalformedAnswer` when it is not one."""

    @property
    def http(self) -> ProviderHTTP:
        """The worker's client, made on first use from the provider's environment variables."""
        if self._http is None:
            settings = self._context.settings if self._context is not None else None
            base_url, headers = self.client_config(os.environ)
            if self._endpoint is not None:  # a job's own base URL: only one the worker trusts gets its key
                trusted_bases = settings.trusted_base_urls if settings is not None else ()
                base_url, headers = endpoint_config(self.name, self._endpoint, base_url, headers, trusted_bases)
            trusted = listed_for(self.name, settings.trusted_result_hosts) if settings is not None else ()
            params = self.client_params(os.environ)
            self._http = ProviderHTTP(self.name, base_url, headers, trusted=trusted, params=params)
        return self._http

    def status(self, batch_id: str) -> Snapshot:
        batch_id = path_id(batch_id, "batch id", self.name)
        answer = self.http.request("GET", f"{self.batches_path}/{batch_id}")
        return self.to_snapshot(json_answer(answer.content, self.name))

    def cancel(self, batch_id: str) -> Snapshot:
        try:
            batch_id = path_id(batch_id, "batch id", self.name)
            answer = self.http.request("POST", f"{self.batches_path}/{batch_id}/cancel")
            return self.to_snapshot(json_answer(answer.content, self.name))
        except ProviderRejected as error:
            snapshot = self.status(batch_id)
            if snapshot.ended or snapshot.state == "cancelling":
                return snapshot  # it ended (or is stopping) before the cancel arrived
            raise error from None

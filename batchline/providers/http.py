"""One httpx2 client per adapter and process: timeouts, and retries that honour the provider's `Retry-After`.

Retried: 408, 409, 429, 5xx and dropped connections, as the providers' SDKs retry them. A request that creates
something paid (`idempotent=False`) is never retried here: it may have gone through before the connection dropped,
so the pipeline's claim-and-find decides instead. Errors never carry a header, so never the API key.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx2

from .base import ProviderRejected, TransientProviderError

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
TIMEOUT = httpx2.Timeout(120.0, connect=10.0)
MAX_INLINE_WAIT = 5.0
"""The longest back-off slept inside a task; a longer Retry-After is honoured by retrying the task later."""


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
    ) -> None:
        self.provider = provider
        self.attempts = attempts
        self.backoff = backoff
        self.client = httpx2.Client(
            base_url=base_url.rstrip("/"), headers=dict(headers), timeout=TIMEOUT, transport=transport
        )

    def request(self, method: str, url: str, *, idempotent: bool = True, **kwargs: Any) -> httpx2.Response:
        """Send a request and return its successful response, retrying what the provider asks to be retried."""
        attempts = self.attempts if idempotent else 1
        for attempt in range(1, attempts + 1):
            try:
                response = self.client.request(method, url, **kwargs)
            except httpx2.TransportError as error:
                if attempt == attempts:
                    raise TransientProviderError(f"{self.provider}: {type(error).__name__} on {method} {url}") from None
                time.sleep(self.backoff * 2 ** (attempt - 1))
                continue
            if response.is_success:
                return response
            self.raise_for(response, method, url, last=attempt == attempts)
            wait = retry_after(response) or self.backoff * 2 ** (attempt - 1)
            if wait > MAX_INLINE_WAIT:
                # A long wait must not hold a worker slot: the task comes back after it, by countdown.
                raise TransientProviderError(f"{self.provider}: {method} {url} asked to wait {wait:.0f}s", wait)
            time.sleep(wait)
        raise AssertionError("unreachable")

    @contextmanager
    def stream(self, method: str, url: str, **kwargs: Any) -> Iterator[httpx2.Response]:
        """A streamed response; a body that ends before its `Content-Length` is a transient error, never trusted."""
        try:
            with self.client.stream(method, url, **kwargs) as response:
                if not response.is_success:
                    response.read()
                    self.raise_for(response, method, url, last=True)
                yield response
        except (httpx2.TransportError, httpx2.StreamError) as error:
            raise TransientProviderError(
                f"{self.provider}: the download of {url} broke off ({type(error).__name__}); it is read again"
            ) from None

    def raise_for(self, response: httpx2.Response, method: str, url: str, *, last: bool) -> None:
        """Raise for a failed response: rejected for good, or transient once the retries are spent."""
        status = response.status_code
        message = f"{self.provider}: {method} {url} answered {status}: {error_message(response)}"
        if status not in RETRY_STATUSES and response.headers.get("x-should-retry") != "true":
            raise ProviderRejected(message, status)
        if last:
            raise TransientProviderError(message, retry_after(response))

    def close(self) -> None:
        self.client.close()


def retry_after(response: httpx2.Response) -> float | None:
    """The wait the provider asked for: `retry-after-ms`, or `retry-after` in seconds or as an HTTP date."""
    if (ms := response.headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else None


def error_message(response: httpx2.Response) -> str:
    """The provider's own error message (`{"error": {"message": ...}}` in all three APIs), else the status text."""
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "error"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        nested = error.get("error")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else error  # Anthropic nests it
        return str(inner.get("message") or inner.get("type") or error)
    return response.reason_phrase or "error"

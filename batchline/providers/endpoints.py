"""A job's own endpoint: the non-secret parts of a pydantic-ai `Model` instance's provider (its base URL and the headers
that are not credentials), which travel with the job so the workers reach the same host with their own key.

A worker sends its key (from its environment) only to a base URL it trusts: the one it is configured with (its
`OPENAI_BASE_URL`, `ANTHROPIC_BASE_URL` or `GOOGLE_GEMINI_BASE_URL`, else the provider's official origin) and the
origins listed in `BATCHLINE_TRUSTED_BASE_URLS` (an entry `openai=https://...` for that provider's key alone). A worker
pointed at a gateway never sends the gateway's key to the official host. An instance on the provider's official base URL
carries no base URL at all (`Endpoint.base_url` is empty): its calls go where the worker's own configuration says, as a
model string's do. The caller checks before storing a job, the worker again before sending a key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from ..errors import ProviderRejected
from ..trusted_urls import BASE_URL_VARIABLES, OFFICIAL_BASE_URLS, listed_for

TRUSTED_SETTING = "BATCHLINE_TRUSTED_BASE_URLS"


def origin_of(url: str) -> str:
    """`scheme://host:port` of a URL, the port spelled out, so `https://h` and `https://h:443/x` are one origin."""
    parts = urlsplit(url.strip())
    scheme = (parts.scheme or "https").lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme, 0)
    except ValueError:
        port = -1  # a port that is not a number: an origin nothing else has
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


_CREDENTIAL_WORDS = (
    "auth",
    "key",
    "token",
    "secret",
    "pass",
    "cookie",
    "session",
    "sig",
    "cred",
    "jwt",
    "assertion",
    "oidc",
    "bearer",
    "cert",
)
_CREDENTIAL_VALUES = ("bearer ", "basic ", "sk-", "sk_", "eyj")  # schemes, key prefixes, a JWT's first bytes
_SDK_HEADERS = ("accept", "content-type", "content-length", "user-agent", "host", "x-stainless-")


def is_credential(header: str, value: str = "") -> bool:
    """Whether a header may carry a secret, by its name or the look of its value: it never leaves the caller's
    process."""
    name = header.lower()
    return any(word in name for word in _CREDENTIAL_WORDS) or value.strip().lower().startswith(_CREDENTIAL_VALUES)


def plain_headers(headers: Mapping[str, object]) -> dict[str, str]:
    """The headers that may travel with a job: text values, neither credentials nor the SDK's own."""
    return {
        name: value
        for name, value in headers.items()
        if isinstance(value, str) and not is_credential(name, value) and not name.lower().startswith(_SDK_HEADERS)
    }


@dataclass(frozen=True)
class Endpoint:
    """Where a job's provider batches go, and the non-secret headers they carry; never a key."""

    base_url: str
    """A base URL of the model's own, or "" for the one the worker is configured with."""
    headers: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> str:
        return orjson.dumps({"base_url": self.base_url, "headers": dict(self.headers)}).decode()

    @classmethod
    def from_json(cls, text: str) -> Endpoint | None:
        if not text:
            return None
        value = orjson.loads(text)
        return cls(value["base_url"], tuple(plain_headers(value.get("headers") or {}).items()))


def hidden_credentials(url: str) -> bool:
    """Whether a base URL carries more than a place: a user or password, a query or a fragment (where keys hide)."""
    parts = urlsplit(url.strip())
    return bool(parts.username or parts.password or parts.query or parts.fragment)


def is_official(provider: str, url: str) -> bool:
    official = OFFICIAL_BASE_URLS.get(provider)
    return official is not None and origin_of(url) == origin_of(official)


def trusted_origins(provider: str, trusted: Iterable[str], environ: Mapping[str, str] | None = None) -> set[str]:
    """The origins `provider`'s key may go to: the worker's configured base URL (its environment's, else the
    official one) and the listed ones (those scoped to another provider left out)."""
    env = os.environ if environ is None else environ
    origins = {origin_of(url) for url in listed_for(provider, trusted)}
    variable = BASE_URL_VARIABLES.get(provider)
    configured = env.get(variable, "").strip() if variable else ""
    if configured:
        origins.add(origin_of(configured))
    elif official := OFFICIAL_BASE_URLS.get(provider):
        origins.add(origin_of(official))
    return origins


def untrusted(
    provider: str, base_url: str, trusted: Iterable[str], environ: Mapping[str, str] | None = None
) -> str | None:
    """Why `base_url` must not receive `provider`'s key, or None when it may ("" is the worker's own). The reason
    names the URL's origin only: the rest of it may hold what must not be repeated."""
    if not base_url:
        return None
    origin = origin_of(base_url)
    if hidden_credentials(base_url):
        return f"{provider}: the model's base URL (origin {origin}) carries a user, password or query; none is sent."
    if origin in trusted_origins(provider, trusted, environ):
        return None
    variable = BASE_URL_VARIABLES.get(provider, "the provider's base URL variable")
    return (
        f"{provider}: the model's base URL (origin {origin}) is not one the workers trust with their API key; trusted "
        f"are the base URL the workers are configured with ({variable}, else the provider's official origin) and the "
        f"origins listed in {TRUSTED_SETTING} (add {origin} there to allow it)."
    )


def endpoint_config(
    provider: str, endpoint: Endpoint, base_url: str, headers: Mapping[str, str], trusted: Iterable[str]
) -> tuple[str, dict[str, str]]:
    """The base URL and headers a worker sends a job's calls with: the job's endpoint, checked against what the worker
    trusts before its key (in `headers`, from its environment) goes anywhere, else its own `base_url`; the worker's
    own headers win."""
    reason = untrusted(provider, endpoint.base_url, trusted)
    if reason is not None:
        raise ProviderRejected(reason, 403)
    return endpoint.base_url or base_url, {**dict(endpoint.headers), **headers}

"""Every error batchline raises, under one base class, so `except BatchlineError` catches all of them.

| error | raised | means |
|---|---|---|
| `BatchInputError` | in the caller, at create | the requests or options are not valid; nothing was stored or sent |
| `CallbackNotAllowed` | at create, and again on the worker | a callback names a task the workers do not allow |
| `SettingsError` | when settings load | a setting has a value batchline cannot run with |
| `JobNotFound` | on any read of a job | no such job in the store (expired, or another store) |
| `UnsupportedOnCluster` | at create | the cache or agents asked of a store on a Redis Cluster; nothing was written |
| `TransientProviderError` | on the worker | the provider cannot answer now; the step is retried later |
| `ProviderRejected` | on the worker | the provider refused for good; retrying cannot help |
"""

from __future__ import annotations


class BatchlineError(Exception):
    """The base of every error batchline raises itself."""


class BatchInputError(BatchlineError, ValueError):
    """The requests of a job are not valid; raised before anything is stored or sent."""


class CallbackNotAllowed(BatchInputError):
    """A job names a task (or a canvas) the workers' `allowed_callbacks` does not allow, or one it cannot read."""


class SettingsError(BatchlineError, ValueError):
    """A batchline setting has a value batchline cannot run with; the message names the setting and what it takes."""


class JobNotFound(BatchlineError, LookupError):
    """No job of that id in the store: finished longer ago than its TTL, or in another store."""


class UnsupportedOnCluster(BatchlineError, ValueError):
    """A feature whose Redis scripts span several jobs (the response cache, agents), asked of a store on a Redis
    Cluster; refused before anything is written or sent."""


class TransientProviderError(BatchlineError):
    """The provider could not answer now (429, 5xx, a dropped connection): the step is tried again later."""

    def __init__(self, message: str, retry_after: float | None = None, *, loggable: str = "") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.loggable = loggable or message
        """The message without what the provider wrote: see `for_log`."""


class MalformedAnswer(TransientProviderError):
    """The provider answered something batchline cannot read (not JSON, a list, no id). It may be a proxy's passing
    glitch, so the step is tried again, a bounded number of times: then the part ends failed, naming this."""


class BrokenDownload(TransientProviderError):
    """A results download broke off after its answer began (a body shorter than its Content-Length, a dropped
    connection). Tried again a bounded number of times: a download that always breaks the same way is poison."""


class ProviderRejected(BatchlineError):
    """The provider refused a request for good (4xx): retrying the same request cannot help."""

    def __init__(self, message: str, status_code: int, *, loggable: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.loggable = loggable or message
        """The message without what the provider wrote: see `for_log`."""


class HostileAnswer(ProviderRejected):
    """The provider pointed batchline somewhere it must not go: a URL on a foreign origin, or an id that would change
    the path it is put in. Nothing is sent; retrying cannot help."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 0)


def for_log(error: BaseException) -> str:
    """What a log line (or a retry's reason) says of `error`: a provider error without the provider's own words, which
    may quote a request (a gateway echoing the input it refused). The job's stored error, read by its owner, keeps
    them."""
    return getattr(error, "loggable", None) or str(error)

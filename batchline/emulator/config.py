"""The emulator's configuration: timing, answer template, shuffle seed, limits and faults.

Every type here converts to and from plain JSON (`to_dict` / `from_dict`), so the same objects travel over the
admin endpoint (`PUT /_emulator/faults`, `PUT /_emulator/config`) that the Python handle calls.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Provider = Literal["openai", "anthropic", "gemini", "mistral"]
HttpFaultKind = Literal["status", "drop", "slow", "truncate", "replace", "patch", "lie_length", "inject_lines"]
BatchOutcome = Literal["fail", "expire", "cancel"]
RequestErrorKind = Literal["server_error", "rate_limit", "invalid_request", "overloaded", "billing"]


@dataclass
class HttpFault:
    """A fault on HTTP requests the emulator receives.

    kind: `status` answers `status` (429/500/503...) in the provider's error shape, with `Retry-After: retry_after`
    when given; `drop` closes the connection without an answer; `slow` waits `delay` seconds before answering;
    `truncate` (downloads only) promises the full Content-Length and stops after `fraction` of the body.
    A hostile or broken provider: `replace` runs the request (a create still creates) and answers 200 with `body`
    (any JSON value: a list, a string) instead; `patch` runs it and merges `body` (an object, merged key by key into
    nested objects) into its JSON answer and sets `headers` on it (a foreign `results_url`, a bad file id, an upload
    URL on another host); `lie_length` (downloads only) sends the whole body under a Content-Length of `length`
    bytes, then closes; `inject_lines` (downloads only) adds `lines`, as given, after the file's own lines.
    A request matches when `provider`, `method` and the `path` regex (searched in the URL path) all match (None or
    "" matches anything). `times` is how many matching requests it hits before it stops; None means every one.
    """

    kind: HttpFaultKind = "status"
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0
    fraction: float = 0.5
    provider: Provider | None = None
    method: str | None = None
    path: str = ""
    times: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    length: int = 2_000_000_000
    lines: list[str] = field(default_factory=list)


@dataclass
class BatchFault:
    """What happens to the next batches created (`times` of them; None means all) of `provider` (None: any).

    `fail`: the batch fails validation with `code`/`message` (OpenAI `status: failed` with `errors.data`, Gemini
    `BATCH_STATE_FAILED` with an `error`; Anthropic refuses the create call with a 400, as it validates there).
    `expire`: the batch runs `done_fraction` of its requests, then expires; the rest are reported expired.
    `cancel`: the batch is cancelled after `done_fraction` of its requests ran, as if someone cancelled it.
    """

    outcome: BatchOutcome = "fail"
    provider: Provider | None = None
    code: str = "token_limit_exceeded"
    message: str = (
        "Enqueued token limit reached for this model in your organization. "
        "Please try submitting an input file with fewer tokens, or wait for some in-progress batch jobs to complete."
    )
    done_fraction: float = 0.5
    times: int | None = 1


@dataclass
class RequestFault:
    """Requests that fail inside a batch, chosen by custom_id (Gemini: the line's key, or the index of an inline
    request): any id in `custom_ids`, or any id the `pattern` regex matches (`re.search`).

    The failure is written in each provider's own shape: an OpenAI error-file line (error inside `response.body`,
    `error: null`), an Anthropic `errored` result, a Gemini error entry.
    """

    custom_ids: list[str] = field(default_factory=list)
    pattern: str | None = None
    provider: Provider | None = None
    kind: RequestErrorKind = "server_error"
    message: str | None = None


@dataclass
class Faults:
    http: list[HttpFault] = field(default_factory=list)
    batches: list[BatchFault] = field(default_factory=list)
    requests: list[RequestFault] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Faults:
        return cls(
            http=[HttpFault(**item) for item in data.get("http", [])],
            batches=[BatchFault(**item) for item in data.get("batches", [])],
            requests=[RequestFault(**item) for item in data.get("requests", [])],
        )


@dataclass
class Limits:
    """The providers' limits; tests lower them to check what happens past them."""

    openai_max_requests: int = 50_000
    openai_max_bytes: int = 200_000_000
    openai_max_metadata_pairs: int = 16
    anthropic_max_requests: int = 100_000
    anthropic_max_bytes: int = 256_000_000
    gemini_max_inline_bytes: int = 20_000_000
    gemini_max_file_bytes: int = 2_000_000_000
    mistral_max_requests: int = 1_000_000
    mistral_max_bytes: int = 512_000_000

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class EmulatorConfig:
    """How the emulator behaves.

    stage_seconds: how long each lifecycle stage lasts (OpenAI validating, in_progress, finalizing; Anthropic
    in_progress; Gemini PENDING, RUNNING; Mistral QUEUED, RUNNING). 0 is instant: the batch has ended on the first
    GET after create.
    response_template: the answer text; `{custom_id}`, `{model}`, `{provider}` and `{tool_results}` (the results of
        the tools called since the last prompt, joined by "; ") are filled in.
    shuffle_seed: seeds the (deterministic) order of result lines.
    completion_window_seconds: after this long (on the emulator's clock) an unfinished batch expires.
    """

    stage_seconds: float = 0.0
    response_template: str = "Mock response for {custom_id}"
    shuffle_seed: int = 0
    completion_window_seconds: float = 24 * 3600.0
    faults: Faults = field(default_factory=Faults)
    limits: Limits = field(default_factory=Limits)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmulatorConfig:
        known = {f.name for f in dataclasses.fields(cls)} - {"faults", "limits"}
        return cls(
            **{key: value for key, value in data.items() if key in known},
            faults=Faults.from_dict(data.get("faults") or {}),
            limits=Limits(**(data.get("limits") or {})),
        )

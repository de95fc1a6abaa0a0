"""What each OpenAI-compatible batch API does its own way: base URL, key, paths, limits, windows. No I/O here.

Groq, Together and Azure OpenAI take the OpenAI batch input file (a JSONL line per request) and run it against a chat
completions endpoint; they differ in where they live, how a key is sent, what they accept and what they answer:

- Groq (`https://api.groq.com/openai/v1`, `Authorization: Bearer $GROQ_API_KEY`): OpenAI's paths and Batch object,
  metadata kept, a completion window of 24 hours to 7 days, 50,000 requests and 200 MB per input file.
- Together (`https://api.together.xyz/v1`, `Authorization: Bearer $TOGETHER_API_KEY`): files uploaded to
  `/files/upload` with purpose `batch-api`; a batch answers upper-case statuses (`IN_PROGRESS`) and no metadata or
  request counts, creating one answers `{"job": ...}`; 50,000 requests and 100 MB per file, a fixed 24-hour window.
- Azure OpenAI (`$AZURE_OPENAI_ENDPOINT/openai`, an `api-key` header, `?api-version=` on every call): the model in a
  line is a batch deployment's name, lines and the batch name `/chat/completions`; 100,000 requests and 200 MB per
  file, a 24-hour window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..base import State
from ..openai.wire import STATES

AZURE_API_VERSION = "2024-10-21"
"""The GA `api-version` with global batch, used when the worker sets no `OPENAI_API_VERSION`."""


@dataclass(frozen=True)
class Flavour:
    name: str
    """The adapter's name and model prefix (`groq`)."""
    key_variable: str
    """The environment variable of its key, as its SDK reads it."""
    base_url_variable: str
    """The environment variable its SDK takes a base URL from."""
    default_base_url: str
    """The official base URL the paths below join, when the variable is unset ("" for none: Azure's is per resource)."""
    url_suffix: str = ""
    """Joined to the variable's URL: Groq's SDK base is `https://api.groq.com`, its batch API under `/openai/v1`."""
    endpoint: str = "/v1/chat/completions"
    """The endpoint the batch (and each input line) names."""
    max_requests: int = 50_000
    max_bytes: int = 200_000_000
    completion_window: str = "24h"
    windows: tuple[str, ...] = ("24h",)
    """The completion windows the API takes (batchline asks for `completion_window`)."""
    bearer: bool = True
    """A Bearer token; else Azure's `api-key` header."""
    keeps_metadata: bool = True
    """Whether a batch keeps the metadata it is created with, so a lost id is found by listing batches."""
    upload_path: str = "/files"
    upload_purpose: str = "batch"
    states: dict[str, State] = field(default_factory=lambda: dict(STATES))
    """The API's status words, in batchline's."""


GROQ = Flavour(
    name="groq",
    key_variable="GROQ_API_KEY",
    base_url_variable="GROQ_BASE_URL",
    default_base_url="https://api.groq.com",
    url_suffix="/openai/v1",
    windows=("24h", "48h", "72h", "96h", "120h", "144h", "168h", "1d", "2d", "3d", "4d", "5d", "6d", "7d"),
)

TOGETHER_STATES: dict[str, State] = {
    "VALIDATING": "running",
    "IN_PROGRESS": "running",
    "CANCELLING": "cancelling",
    "COMPLETED": "completed",
    "FAILED": "failed",
    "EXPIRED": "expired",
    "CANCELLED": "cancelled",
}

TOGETHER = Flavour(
    name="together",
    key_variable="TOGETHER_API_KEY",
    base_url_variable="TOGETHER_BASE_URL",
    default_base_url="https://api.together.xyz/v1",
    max_bytes=100_000_000,
    keeps_metadata=False,
    upload_path="/files/upload",
    upload_purpose="batch-api",
    states=TOGETHER_STATES,
)

AZURE = Flavour(
    name="azure",
    key_variable="AZURE_OPENAI_API_KEY",
    base_url_variable="AZURE_OPENAI_ENDPOINT",
    default_base_url="",
    url_suffix="/openai",
    endpoint="/chat/completions",
    max_requests=100_000,
    bearer=False,
)

FLAVOURS: dict[str, Flavour] = {f.name: f for f in (GROQ, TOGETHER, AZURE)}

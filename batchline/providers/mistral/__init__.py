"""The Mistral batch API adapter (`mistral:` models), for api.mistral.ai and compatible hosts (`MISTRAL_BASE_URL`).

wire.py holds the API's JSON, transport.py the worker's HTTP calls, codec.py pydantic-ai's encoding and decoding
(MistralModel's message mapping, with the mistralai SDK of the `mistral` extra), which this adapter loads only when
asked to encode or decode: a worker never imports it. A Mistral job runs one model, so each model is its own job.
"""

from __future__ import annotations

from typing import ClassVar

from ..base import LazyCodec, Provider
from . import wire
from .transport import MistralTransport

__all__ = ["MistralProvider"]


class MistralProvider(MistralTransport, LazyCodec, Provider):
    name = "mistral"
    codec_module = f"{__name__}.codec"  # pydantic-ai's Mistral model and the SDK load only where requests are encoded
    max_requests = wire.MAX_REQUESTS
    max_bytes = wire.MAX_BYTES
    request_models: ClassVar[bool] = True
    """A request may name its own model: each model becomes its own job."""

    # raw mode: the provider's own lines (`/v1/chat/completions` bodies naming their model), exported as its files are
    encode_raw = staticmethod(wire.raw_request)
    export_line = staticmethod(wire.export_line)
    request_size = staticmethod(wire.line_size)

"""The OpenAI Batch API adapter (`openai:` models), for api.openai.com and compatible hosts (`OPENAI_BASE_URL`).

wire.py holds the API's JSON, transport.py the worker's HTTP calls, codec.py (with fastdecode.py) pydantic-ai's
encoding and decoding, which this adapter loads only when asked to encode or decode: a worker never imports it.
"""

from __future__ import annotations

from typing import ClassVar

from ..base import LazyCodec, Provider
from . import wire
from .transport import OpenAITransport

__all__ = ["OpenAIProvider"]


class OpenAIProvider(OpenAITransport, LazyCodec, Provider):
    name = "openai"
    codec_module = f"{__name__}.codec"  # pydantic-ai and the SDK load only where requests are encoded
    max_requests = wire.MAX_REQUESTS
    max_bytes = wire.MAX_BYTES
    request_models: ClassVar[bool] = True
    """A request may name its own model: each model becomes its own batch."""

    # raw mode: the provider's own lines, checked, passed through and exported as its results file writes them
    encode_raw = staticmethod(wire.raw_request)
    export_line = staticmethod(wire.export_line)
    request_size = staticmethod(wire.line_size)

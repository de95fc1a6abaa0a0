"""The Anthropic Message Batches adapter (`anthropic:` models).

wire.py holds the API's JSON, transport.py the worker's HTTP calls, codec.py pydantic-ai's encoding and decoding,
which this adapter loads only when asked to encode or decode: a worker never imports it. Each request may name its
own model (the `model` option), so models mix in one batch; only the beta flags, a batch-wide header, split batches.
"""

from __future__ import annotations

from typing import ClassVar

from ..base import LazyCodec, Provider
from . import wire
from .transport import AnthropicTransport

__all__ = ["AnthropicProvider"]


class AnthropicProvider(AnthropicTransport, LazyCodec, Provider):
    name = "anthropic"
    codec_module = f"{__name__}.codec"  # pydantic-ai and the SDK load only where requests are encoded
    max_requests = wire.MAX_REQUESTS
    max_bytes = wire.MAX_BYTES
    request_models: ClassVar[bool] = True
    """A request may name its own model, and models mix in one batch."""

    # raw mode: the provider's own lines, checked, passed through and exported as its results file writes them
    encode_raw = staticmethod(wire.raw_request)
    export_line = staticmethod(wire.export_line)
    request_size = staticmethod(wire.item_size)

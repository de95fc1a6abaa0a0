"""The Anthropic Message Batches adapter (`anthropic:` models).

wire.py holds the API's JSON, transport.py the worker's HTTP calls, codec.py pydantic-ai's encoding and decoding,
which this adapter loads only when asked to encode or decode: a worker never imports it. Each request may name its
own model (the `model` option), so models mix in one batch; only the beta flags, a batch-wide header, split batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from ...raw import RawRequest
from ..base import Encoded, Provider
from . import wire
from .transport import AnthropicTransport

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelResponse
    from pydantic_ai.models.batch import BatchRequest

    from ...records import StoredResult

__all__ = ["AnthropicProvider"]


class AnthropicProvider(AnthropicTransport, Provider):
    name = "anthropic"
    max_requests = wire.MAX_REQUESTS
    max_bytes = wire.MAX_BYTES
    request_models: ClassVar[bool] = True
    """A request may name its own model, and models mix in one batch."""

    def encode(self, request: BatchRequest) -> Encoded:
        return self.encode_many([request])[0]

    def encode_many(self, requests: Sequence[BatchRequest]) -> list[Encoded]:
        from . import codec  # pydantic-ai and the anthropic SDK load only where requests are encoded

        return codec.encode_many(self.model_name, requests)

    def decode(self, result: StoredResult, request: BatchRequest) -> ModelResponse:
        from . import codec

        return codec.decode(self.model_name, result, request)

    def encode_raw(self, request: RawRequest) -> Encoded:
        return wire.raw_request(request)

    def export_line(self, custom_id: str, status: str, body: bytes) -> bytes:
        return wire.export_line(custom_id, status, body)

    def request_size(self, request: Encoded) -> int:
        return wire.item_size(request)

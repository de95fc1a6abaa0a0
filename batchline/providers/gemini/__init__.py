"""Google Gemini (`google:<model>`): the Gemini API's batch mode, through its REST API.

wire.py holds the API's JSON, api.py its REST calls, spool.py a part's input (inline or a file), transport.py the
worker's side that ties them together, codec.py pydantic-ai's encoding and decoding (`GoogleModel.batch_encode` /
`batch_decode`), which this adapter loads only when asked to encode or decode: a worker never imports it.

Limits: Gemini documents no request count per batch; `max_requests` is 100,000 (as Anthropic's), which keeps a part's
result file and its fetch to minutes and a failure to one part. Bytes: 2 GB, the input-file limit.
"""

from __future__ import annotations

from ..base import Encoded, LazyCodec, Provider
from . import wire
from .transport import GeminiTransport

__all__ = ["GeminiProvider"]


class GeminiProvider(GeminiTransport, LazyCodec, Provider):
    name = "gemini"
    codec_module = f"{__name__}.codec"  # pydantic-ai and the SDK load only where requests are encoded
    max_requests = wire.MAX_REQUESTS
    max_bytes = wire.MAX_BYTES

    def request_size(self, request: Encoded) -> int:
        return wire.inline_item_size(request.custom_id, request.body) + 1

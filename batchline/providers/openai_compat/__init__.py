"""The OpenAI-compatible batch APIs: `groq:`, `together:` and `azure:` models, on the OpenAI adapter.

Each is the OpenAI adapter told its provider's `Flavour` (flavours.py): where it lives, how its key is sent, its
limits and windows, its status words. transport.py is the OpenAI transport with those differences; codec.py encodes
Chat Completions bodies through pydantic-ai's `OpenAIChatModel` with the provider's profile, loaded only where
requests are encoded or decoded.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..._json import dumps
from ...errors import BatchInputError
from ...raw import RawRequest
from ..base import Encoded, LazyCodec, Provider
from ..openai import wire
from .flavours import AZURE, GROQ, TOGETHER
from .transport import CompatTransport

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelResponse
    from pydantic_ai.models import Model
    from pydantic_ai.models.batch import BatchRequest

    from ...records import StoredResult

__all__ = ["AzureProvider", "CompatProvider", "GroqProvider", "TogetherProvider"]

_CODEC = f"{__name__}.codec"


class CompatProvider(CompatTransport, LazyCodec, Provider):
    """An OpenAI-compatible batch API's adapter; its subclasses name their `flavour`."""

    codec_module = _CODEC
    request_models: ClassVar[bool] = False
    """A batch runs one model (a deployment, for Azure): requests cannot name their own."""
    export_line = staticmethod(wire.export_line)
    request_size = staticmethod(wire.line_size)

    def _compat_codec(self) -> Any:
        return importlib.import_module(_CODEC)

    def pydantic_model(self) -> Model:
        if self.instance is not None:
            return self.instance
        model: Model = self._compat_codec().codec_model(self.name, self.model_name)
        return model

    def encode_many(self, requests: Sequence[BatchRequest]) -> list[Encoded]:
        encoded: list[Encoded] = self._compat_codec().encode_many(self.name, self.model_name, requests, self.instance)
        return encoded

    def decode(self, result: StoredResult, request: BatchRequest) -> ModelResponse:
        codec = self._compat_codec()
        response: ModelResponse = codec.decode(self.name, self.model_name, result, request, self.instance)
        return response

    def encode_raw(self, request: RawRequest) -> Encoded:
        """A provider's own batch line, kept as it is: it must name the provider's endpoint and the job's model."""
        endpoint = self.flavour.endpoint
        if request.url != endpoint:
            raise BatchInputError(
                f"request {request.custom_id!r}: url {request.url!r} is not {self.flavour.name}'s batch endpoint "
                f"({endpoint})."
            )
        if request.body.get("model") != self.model_name:
            raise BatchInputError(
                f"request {request.custom_id!r}: its body's model is not the job's ({self.model_name!r}); a "
                f"{self.flavour.name} batch runs one model."
            )
        return Encoded(request.custom_id, dumps(request.body))


class GroqProvider(CompatProvider):
    name = "groq"
    flavour = GROQ
    max_requests = GROQ.max_requests
    max_bytes = GROQ.max_bytes


class TogetherProvider(CompatProvider):
    name = "together"
    flavour = TOGETHER
    max_requests = TOGETHER.max_requests
    max_bytes = TOGETHER.max_bytes


class AzureProvider(CompatProvider):
    name = "azure"
    flavour = AZURE
    max_requests = AZURE.max_requests
    max_bytes = AZURE.max_bytes

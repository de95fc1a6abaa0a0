"""User requests -> pydantic-ai `BatchRequest`s, checked; and the stored form of their parameters and settings.

Encoding to provider-native bodies and decoding results back belong to pydantic-ai (`Model.batch_encode` and
`Model.batch_decode`, called by each adapter); this module makes sure what reaches them is what the user meant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
from pydantic import TypeAdapter
from pydantic_ai.messages import ModelRequest, ModelResponse
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.models.batch import BatchRequest
from pydantic_ai.settings import ModelSettings

from ._json import dumps
from .errors import BatchInputError
from .raw import RawRequest

PARAMS = TypeAdapter(ModelRequestParameters)
OPTION_KEYS = frozenset({"model_request_parameters", "model_settings", "model"})


@dataclass(kw_only=True)
class ModelBatchRequest(BatchRequest):
    """A `BatchRequest` that names its own model, for a provider that mixes models in one batch (Anthropic), or
    splits them into one batch per model (OpenAI). Other adapters refuse it."""

    model: str
    """The model name, bare (`claude-haiku-4-5`) or with the job's prefix (`anthropic:claude-haiku-4-5`)."""


@dataclass(kw_only=True)
class RawBatchRequest(BatchRequest):
    """A request already in the provider's own format (raw mode): the adapter sends `raw.body` unchanged."""

    raw: RawRequest


def request_model(request: BatchRequest) -> str | None:
    """The model `request` names for itself, if it names one."""
    return request.model if isinstance(request, ModelBatchRequest) else None


def to_batch_requests(
    requests: Sequence[Any],
    params: ModelRequestParameters | None = None,
    settings: ModelSettings | None = None,
) -> list[tuple[BatchRequest, bytes | None]]:
    """Each request item as a `BatchRequest` with the job's defaults applied, plus its own options to store.

    An item is `(custom_id, messages)`, `(custom_id, messages, own)` where `own` is a `ModelRequestParameters`, a
    `ModelSettings` dict, or `{"model_request_parameters": ..., "model_settings": ..., "model": ...}` (each key
    optional; `model` names this request's own model where the provider allows it); or a pydantic-ai `BatchRequest`.
    """
    if isinstance(requests, str | bytes) or not isinstance(requests, Sequence):
        raise BatchInputError(
            f"requests must be a list of (custom_id, messages) tuples, not {type(requests).__name__}."
        )
    if not requests:
        raise BatchInputError("requests is empty: a batch needs at least one request.")
    default_params = params if params is not None else ModelRequestParameters()
    if not isinstance(default_params, ModelRequestParameters):
        raise BatchInputError("model_request_parameters must be a pydantic-ai ModelRequestParameters.")
    default_settings = _check_settings(settings, "model_settings")
    seen: set[str] = set()
    out: list[tuple[BatchRequest, bytes | None]] = []
    for index, item in enumerate(requests):
        if isinstance(item, RawRequest):
            custom_id = _check_id(index, item.custom_id)
            if custom_id in seen:
                raise BatchInputError(f"custom_id {custom_id!r} is used twice; each request needs a unique custom_id.")
            seen.add(custom_id)
            out.append((RawBatchRequest(custom_id=custom_id, messages=[], raw=item), None))
            continue
        custom_id, messages, own_params, own_settings, own_model = _unpack(index, item)
        if custom_id in seen:
            raise BatchInputError(f"custom_id {custom_id!r} is used twice; each request needs a unique custom_id.")
        seen.add(custom_id)
        _check_messages(custom_id, messages)
        own: bytes | None = None
        if own_params is not None or own_settings is not None or own_model is not None:
            stored: dict[str, Any] = {
                "params": None if own_params is None else orjson.Fragment(PARAMS.dump_json(own_params)),
                "settings": own_settings,
            }
            if own_model is not None:
                stored["model"] = own_model
            own = dumps(stored)
        merged = {**(default_settings or {}), **(own_settings or {})}
        fields: dict[str, Any] = {
            "custom_id": custom_id,
            "messages": list(messages),
            "model_settings": cast(ModelSettings, merged) if merged else None,
            "model_request_parameters": own_params or default_params,
        }
        request = BatchRequest(**fields) if own_model is None else ModelBatchRequest(**fields, model=own_model)
        out.append((request, own))
    return out


def decode_request(
    custom_id: str,
    default_params: ModelRequestParameters,
    default_settings: ModelSettings | None,
    own: bytes | None,
) -> BatchRequest:
    """The `BatchRequest` a result is decoded against: the request's parameters and settings, without its messages."""
    params, settings, model = default_params, dict(default_settings or {}), None
    if own is not None:
        stored = orjson.loads(own)
        if stored.get("params") is not None:
            params = PARAMS.validate_python(stored["params"])
        settings.update(stored.get("settings") or {})
        model = stored.get("model")
    fields: dict[str, Any] = {
        "custom_id": custom_id,
        "messages": [],
        "model_settings": cast(ModelSettings, settings) if settings else None,
        "model_request_parameters": params,
    }
    return BatchRequest(**fields) if model is None else ModelBatchRequest(**fields, model=model)


def _unpack(index: int, item: Any) -> tuple[str, Any, ModelRequestParameters | None, dict[str, Any] | None, str | None]:
    if isinstance(item, BatchRequest):
        settings = _check_settings(item.model_settings, f"request {item.custom_id!r} model_settings")
        custom_id = _check_id(index, item.custom_id)
        model = _check_model(custom_id, request_model(item))
        return custom_id, item.messages, item.model_request_parameters, settings, model
    if not isinstance(item, tuple | list) or len(item) not in (2, 3):
        raise BatchInputError(
            f"request #{index} must be a (custom_id, messages) or (custom_id, messages, options) tuple, "
            f"not {type(item).__name__}."
        )
    custom_id = _check_id(index, item[0])
    own_params: ModelRequestParameters | None = None
    own_settings: dict[str, Any] | None = None
    own_model: str | None = None
    if len(item) == 3:
        option = item[2]
        if isinstance(option, ModelRequestParameters):
            own_params = option
        elif isinstance(option, Mapping) and option and ("model" in option or set(option) <= OPTION_KEYS):
            if not set(option) <= OPTION_KEYS:
                extra = ", ".join(sorted(set(option) - OPTION_KEYS))
                raise BatchInputError(
                    f"request {custom_id!r}: options naming a model take only model, model_settings and "
                    f"model_request_parameters; put {extra} under model_settings."
                )
            own_params = option.get("model_request_parameters")
            if own_params is not None and not isinstance(own_params, ModelRequestParameters):
                raise BatchInputError(
                    f"request {custom_id!r}: model_request_parameters must be ModelRequestParameters."
                )
            own_settings = _check_settings(option.get("model_settings"), f"request {custom_id!r} model_settings")
            own_model = _check_model(custom_id, option.get("model"))
        elif isinstance(option, Mapping):
            own_settings = _check_settings(option, f"request {custom_id!r} model_settings")
        elif option is not None:
            raise BatchInputError(
                f"request {custom_id!r}: the third element must be ModelRequestParameters or ModelSettings, "
                f"not {type(option).__name__}."
            )
    return custom_id, item[1], own_params, own_settings, own_model


def _check_model(custom_id: str, model: Any) -> str | None:
    if model is None:
        return None
    if not isinstance(model, str) or not model.strip():
        raise BatchInputError(f"request {custom_id!r}: model must be a model name such as 'claude-haiku-4-5'.")
    return model


def _check_id(index: int, custom_id: Any) -> str:
    if not isinstance(custom_id, str) or not custom_id.strip():
        raise BatchInputError(f"request #{index} has custom_id {custom_id!r}; it must be a non-empty string.")
    return custom_id


def _check_messages(custom_id: str, messages: Any) -> None:
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence) or not messages:
        raise BatchInputError(
            f"request {custom_id!r}: messages must be a non-empty list of pydantic-ai messages, "
            f"for example [ModelRequest.user_text_prompt('...')]."
        )
    for message in messages:
        if not isinstance(message, ModelRequest | ModelResponse):
            raise BatchInputError(
                f"request {custom_id!r}: {type(message).__name__} is not a pydantic-ai message "
                f"(ModelRequest or ModelResponse)."
            )


def _check_settings(settings: Any, what: str) -> dict[str, Any] | None:
    if settings is None:
        return None
    if not isinstance(settings, Mapping):
        raise BatchInputError(f"{what} must be a ModelSettings dict, not {type(settings).__name__}.")
    try:
        orjson.dumps(dict(settings))
    except TypeError as error:
        raise BatchInputError(f"{what} must hold only JSON values: {error}.") from None
    return dict(settings)

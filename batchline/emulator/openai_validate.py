"""Validation of an OpenAI batch input file, as the Batch API does it while the batch is `validating`.

Problems are not refused at create time: they fail the batch, with one `errors.data` entry per problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from .config import Limits
from .store import RequestSet, split_lines

_MAX_ERRORS = 100


@dataclass
class Validated:
    requests: RequestSet | None
    model: str | None
    errors: list[dict[str, Any]] = field(default_factory=list)


def _error(code: str, message: str, line: int | None = None, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "line": line, "message": message, "param": param}


def validate_input(data: bytes, endpoint: str, limits: Limits, *, route_optional: bool = False) -> Validated:
    """`route_optional`: a line may leave out `method` and `url` (Together's lines are `custom_id` and `body`)."""
    if len(data) > limits.openai_max_bytes:
        message = f"The batch input file is larger than the {limits.openai_max_bytes} byte limit."
        return Validated(None, None, [_error("file_too_large", message)])
    spans = split_lines(data)
    if not spans:
        return Validated(None, None, [_error("empty_file", "The batch input file is empty.")])
    if len(spans) > limits.openai_max_requests:
        message = f"The batch input file contains more than {limits.openai_max_requests} requests."
        return Validated(None, None, [_error("too_many_tasks", message)])
    errors: list[dict[str, Any]] = []
    custom_ids: list[str] = []
    seen: set[str] = set()
    model: str | None = None
    for number, (start, end) in enumerate(spans, start=1):
        if len(errors) >= _MAX_ERRORS:
            break
        try:
            line = orjson.loads(data[start:end])
        except orjson.JSONDecodeError:
            errors.append(_error("invalid_json_line", "This line is not parseable as valid JSON.", number))
            continue
        if not isinstance(line, dict):
            errors.append(_error("invalid_json_line", "This line is not a JSON object.", number))
            continue
        custom_id = line.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            message = "Missing required parameter: 'custom_id'. It must be a non-empty string."
            errors.append(_error("missing_required_parameter", message, number, "custom_id"))
            continue
        if custom_id in seen:
            message = (
                "The custom_id for this request is a duplicate of another request. "
                "The custom_id parameter must be unique for each individual request in a batch."
            )
            errors.append(_error("duplicate_custom_id", message, number, "custom_id"))
        seen.add(custom_id)
        custom_ids.append(custom_id)
        if line.get("method") != "POST" and not (route_optional and "method" not in line):
            errors.append(_error("invalid_method", "The request method must be POST.", number, "method"))
        if line.get("url") != endpoint and not (route_optional and "url" not in line):
            message = f"The URL provided for this request does not match the batch endpoint {endpoint!r}."
            errors.append(_error("url_mismatch", message, number, "url"))
        body = line.get("body")
        if not isinstance(body, dict):
            message = "Missing required parameter: 'body'."
            errors.append(_error("missing_required_parameter", message, number, "body"))
            continue
        line_model = body.get("model")
        if not isinstance(line_model, str) or not line_model:
            errors.append(_error("missing_required_parameter", "Missing required parameter: 'model'.", number, "model"))
        elif model is None:
            model = line_model
        elif line_model != model:
            message = f"The provided model {line_model!r} does not match the model {model!r} of the other requests."
            errors.append(_error("model_mismatch", message, number, "body.model"))
    if errors:
        return Validated(None, model, errors)
    return Validated(RequestSet.from_lines(spans, data, custom_ids), model)

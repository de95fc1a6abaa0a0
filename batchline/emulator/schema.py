"""A small JSON-schema example generator: a deterministic value that satisfies a requested output schema.

Handles objects (required and optional properties), strings (with enum, const, formats, lengths), numbers and
integers (with bounds), booleans, arrays (with minItems), nullable types (`type: [x, "null"]`, `nullable`,
`anyOf` with null), `$ref`/`$defs`, `allOf`, and Gemini's upper-case OpenAPI types (`OBJECT`, `STRING`...).
"""

from __future__ import annotations

from typing import Any

_FORMATS = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "192.0.2.1",
    "hostname": "example.com",
}


def example(schema: Any, root: Any = None, name: str = "value", depth: int = 0) -> Any:
    """A value valid against `schema` (`root` resolves `$ref`s; `name` seeds string values)."""
    if root is None:
        root = schema
    if not isinstance(schema, dict) or depth > 12:
        return None if schema is False else {}
    if "$ref" in schema:
        return example(_resolve(root, schema["$ref"]), root, name, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            options = schema[key]
            chosen = next((o for o in options if not _is_null(o)), options[0])
            return example(chosen, root, name, depth + 1)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            part = _resolve(root, part["$ref"]) if isinstance(part, dict) and "$ref" in part else part
            if isinstance(part, dict):
                _merge(merged, part)
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        _merge(merged, rest)
        return example(merged, root, name, depth + 1)
    kind = _type(schema)
    if kind == "object":
        return _object(schema, root, depth)
    if kind == "array":
        return _array(schema, root, name, depth)
    if kind == "string":
        return _string(schema, name)
    if kind == "integer":
        return int(_number(schema, integer=True))
    if kind == "number":
        return _number(schema, integer=False)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "example"


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and _type(schema) == "null"


def _resolve(root: Any, ref: str) -> Any:
    node = root
    if not ref.startswith("#"):
        return {}
    for part in ref.lstrip("#/").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node


def _merge(target: dict[str, Any], source: dict[str, Any]) -> None:
    for key, value in source.items():
        if key == "properties" and isinstance(value, dict):
            target.setdefault("properties", {}).update(value)
        elif key == "required" and isinstance(value, list):
            target["required"] = sorted({*target.get("required", []), *value})
        else:
            target.setdefault(key, value)


def _type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [str(k).lower() for k in kind]
        kind = next((k for k in kinds if k != "null"), "null")
    if isinstance(kind, str):
        return kind.lower()
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return None


def _object(schema: dict[str, Any], root: Any, depth: int) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    required = schema.get("required")
    names = list(properties) if required is None else [n for n in properties if n in required]
    names += [n for n in (required or []) if n not in names]
    return {prop: example(properties.get(prop, {}), root, prop, depth + 1) for prop in names}


def _array(schema: dict[str, Any], root: Any, name: str, depth: int) -> list[Any]:
    count = max(1, int(schema.get("minItems", 1) or 1))
    if "maxItems" in schema:
        count = min(count, int(schema["maxItems"]))
    prefix = schema.get("prefixItems")
    if isinstance(prefix, list) and prefix:
        return [example(item, root, name, depth + 1) for item in prefix]
    items = schema.get("items", {})
    return [example(items, root, name, depth + 1) for _ in range(count)]


def _string(schema: dict[str, Any], name: str) -> str:
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS:
        return _FORMATS[fmt]
    value = f"example {name}"
    minimum = int(schema.get("minLength", 0) or 0)
    maximum = schema.get("maxLength")
    if len(value) < minimum:
        value = value + "x" * (minimum - len(value))
    if maximum is not None:
        value = value[: int(maximum)]
    return value


def _number(schema: dict[str, Any], *, integer: bool) -> float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    value: float = 1 if integer else 1.5
    if low is not None:
        value = max(value, float(low) + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0))
    if high is not None:
        top = float(high) - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0)
        if value > top:
            value = top if low is None else (float(low) + top) / 2
    if integer:
        return float(int(value))
    return value

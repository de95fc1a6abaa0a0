"""A minimal multipart/form-data reader for file uploads (fields and one or more files)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_DISPOSITION = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def parse(content_type: str, body: bytes) -> dict[str, Part]:
    """The parts of a multipart body by field name; ValueError when it is not one."""
    match = _BOUNDARY.search(content_type)
    if not content_type.lower().startswith("multipart/form-data") or match is None:
        raise ValueError("expected multipart/form-data with a boundary")
    delimiter = b"--" + match.group(1).encode()
    parts: dict[str, Part] = {}
    position = body.find(delimiter)
    if position < 0:
        raise ValueError("no multipart boundary in the body")
    while True:
        position += len(delimiter)
        if body[position : position + 2] == b"--":
            break
        header_end = body.find(b"\r\n\r\n", position)
        if header_end < 0:
            raise ValueError("truncated multipart headers")
        headers = body[position:header_end].decode("utf-8", "replace").strip().split("\r\n")
        start = header_end + 4
        end = body.find(b"\r\n" + delimiter, start)
        if end < 0:
            raise ValueError("truncated multipart body")
        disposition, part_type = "", None
        for header in headers:
            field, _, value = header.partition(":")
            if field.strip().lower() == "content-disposition":
                disposition = value
            elif field.strip().lower() == "content-type":
                part_type = value.strip()
        values = dict(_DISPOSITION.findall(disposition))
        if "name" in values:
            parts[values["name"]] = Part(values["name"], values.get("filename"), part_type, body[start:end])
        position = end + 2
    return parts

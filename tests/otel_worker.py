"""Loaded by a test worker (`-I tests.otel_worker`): each pool process exports its finished spans as JSON lines to
`$BLTEST_SPANS_FILE`, which the test reads (one `write` per span, in append mode: lines of processes never mix)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import orjson
from celery.signals import worker_process_init
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


def span_json(span: ReadableSpan) -> dict[str, Any]:
    context, parent = span.get_span_context(), span.parent
    return {
        "name": span.name,
        "trace_id": f"{context.trace_id:032x}" if context else "",
        "span_id": f"{context.span_id:016x}" if context else "",
        "parent_id": f"{parent.span_id:016x}" if parent else None,
        "attributes": dict(span.attributes or {}),
        "events": [{"name": event.name, "attributes": dict(event.attributes or {})} for event in span.events],
        "status": span.status.status_code.name,
    }


class JsonLinesExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            for span in spans:
                os.write(fd, orjson.dumps(span_json(span), default=list) + b"\n")
        finally:
            os.close(fd)
        return SpanExportResult.SUCCESS


@worker_process_init.connect
def _export_spans(**_: object) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(os.environ["BLTEST_SPANS_FILE"])))
    trace.set_tracer_provider(provider)

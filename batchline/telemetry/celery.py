"""Celery's own task spans, with the trace context in every task message's headers (opentelemetry-instrumentation-
celery): the thread batchline's step spans hang on, across processes, countdown retries and redeliveries."""

from __future__ import annotations

import importlib
import threading
from typing import Any

_lock = threading.Lock()
_done = False

MISSING = "Tracing needs the OpenTelemetry SDK and Celery instrumentation: pip install 'batchline[otel]' ({error})."


def instrument_celery(**providers: Any) -> None:
    """Instrument Celery in this process once (publishing and running tasks); `providers` are the instrumentor's
    `tracer_provider`/`meter_provider` (the global ones when not given). Raises ImportError without the extra."""
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        instrumentor = _instrumentor()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(**{k: v for k, v in providers.items() if v is not None})
        _done = True


def uninstrument_celery() -> None:
    """Undo `instrument_celery` (tests that instrument a process shared with others)."""
    global _done
    with _lock:
        _instrumentor().uninstrument()
        _done = False


def _instrumentor() -> Any:
    """The CeleryInstrumentor singleton, imported by name: it is an optional extra (and untyped)."""
    try:
        module = importlib.import_module("opentelemetry.instrumentation.celery")
    except ImportError as error:
        raise ImportError(MISSING.format(error=error)) from error
    return module.CeleryInstrumentor()

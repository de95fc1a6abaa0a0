"""batchline: LLM requests through the providers' batch APIs, on Celery workers with Redis.

The API loads on first use (`from batchline import batch_create_sync`), so a worker, which needs only the tasks and
the transport, never imports pydantic-ai's models or the providers' SDKs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import (
        batch_cancel,
        batch_cancel_sync,
        batch_create,
        batch_create_sync,
        batch_export_sync,
        batch_list,
        batch_list_sync,
        batch_results,
        batch_results_sync,
        batch_status,
        batch_status_sync,
        batch_wait,
        batch_wait_sync,
        model_request_batch,
        model_request_batch_sync,
    )
    from .errors import BatchInputError, BatchlineError, JobNotFound
    from .raw import RawRequest
    from .types import Batch, BatchError, BatchResult, BatchStatus, ProviderBatch

_HOMES = {"JobNotFound": "errors", "BatchInputError": "errors", "BatchlineError": "errors", "RawRequest": "raw"}
_TYPES = {"Batch", "BatchError", "BatchResult", "BatchStatus", "ProviderBatch"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'batchline' has no attribute {name!r}")
    home = _HOMES.get(name) or ("types" if name in _TYPES else "api")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Batch",
    "BatchError",
    "BatchInputError",
    "BatchResult",
    "BatchStatus",
    "BatchlineError",
    "JobNotFound",
    "ProviderBatch",
    "RawRequest",
    "batch_cancel",
    "batch_cancel_sync",
    "batch_create",
    "batch_create_sync",
    "batch_export_sync",
    "batch_list",
    "batch_list_sync",
    "batch_results",
    "batch_results_sync",
    "batch_status",
    "batch_status_sync",
    "batch_wait",
    "batch_wait_sync",
    "model_request_batch",
    "model_request_batch_sync",
]

"""batchline: LLM requests through the providers' batch APIs, on Celery workers with Redis.

The API loads on first use (`from batchline import batch_create_sync`), so a worker, which needs only the tasks and
the transport, never imports pydantic-ai's models or the providers' SDKs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what a type checker sees at once; `__getattr__` loads each on first use
    from .api import batch_cancel as batch_cancel
    from .api import batch_cancel_sync as batch_cancel_sync
    from .api import batch_create as batch_create
    from .api import batch_create_sync as batch_create_sync
    from .api import batch_export_sync as batch_export_sync
    from .api import batch_list as batch_list
    from .api import batch_list_sync as batch_list_sync
    from .api import batch_results as batch_results
    from .api import batch_results_sync as batch_results_sync
    from .api import batch_status as batch_status
    from .api import batch_status_sync as batch_status_sync
    from .api import batch_wait as batch_wait
    from .api import batch_wait_sync as batch_wait_sync
    from .api import estimate_cost as estimate_cost
    from .api import estimate_cost_sync as estimate_cost_sync
    from .api import model_request_batch as model_request_batch
    from .api import model_request_batch_sync as model_request_batch_sync
    from .embed_api import batch_create_embeddings as batch_create_embeddings
    from .embed_api import batch_create_embeddings_sync as batch_create_embeddings_sync
    from .embed_api import embed_batch as embed_batch
    from .embed_api import embed_batch_sync as embed_batch_sync
    from .embeddings import BatchEmbeddings as BatchEmbeddings
    from .embeddings import EmbeddingRequest as EmbeddingRequest
    from .errors import BatchInputError as BatchInputError
    from .errors import BatchlineError as BatchlineError
    from .errors import JobNotFound as JobNotFound
    from .estimate import CostEstimate as CostEstimate
    from .raw import RawRequest as RawRequest
    from .result_stream import batch_result_chunks_sync as batch_result_chunks_sync
    from .result_stream import batch_results_iter as batch_results_iter
    from .result_stream import batch_results_iter_sync as batch_results_iter_sync
    from .result_stream import results_callback as results_callback
    from .types import Batch as Batch
    from .types import BatchError as BatchError
    from .types import BatchResult as BatchResult
    from .types import BatchStatus as BatchStatus
    from .types import ProviderBatch as ProviderBatch

_EXPORTS = {
    "api": (
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
        "estimate_cost",
        "estimate_cost_sync",
        "model_request_batch",
        "model_request_batch_sync",
    ),
    "embed_api": ("batch_create_embeddings", "batch_create_embeddings_sync", "embed_batch", "embed_batch_sync"),
    "embeddings": ("BatchEmbeddings", "EmbeddingRequest"),
    "errors": ("BatchInputError", "BatchlineError", "JobNotFound"),
    "estimate": ("CostEstimate",),
    "raw": ("RawRequest",),
    "result_stream": (
        "batch_result_chunks_sync",
        "batch_results_iter",
        "batch_results_iter_sync",
        "results_callback",
    ),
    "types": ("Batch", "BatchError", "BatchResult", "BatchStatus", "ProviderBatch"),
}
"""Every public name, by the module it lives in: the one list of what `batchline` exports."""

_HOMES = {name: home for home, names in _EXPORTS.items() for name in names}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'batchline' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

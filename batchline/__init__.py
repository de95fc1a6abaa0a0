"""batchline: LLM requests through the providers' batch APIs, on Celery workers with Redis."""

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
from .pipeline import JobNotFound
from .raw import RawRequest
from .types import Batch, BatchError, BatchInputError, BatchResult, BatchStatus, ProviderBatch

__all__ = [
    "Batch",
    "BatchError",
    "BatchInputError",
    "BatchResult",
    "BatchStatus",
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

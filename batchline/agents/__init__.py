"""pydantic-ai agents on the fleet: thousands of runs, their tools on the workers, each round of model requests one
provider batch per model (`run_batch`). Loads on first use, so a worker that runs no agent never imports them."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import AgentInput as AgentInput
    from .api import cancel as cancel
    from .api import cancel_sync as cancel_sync
    from .api import results as results
    from .api import results_sync as results_sync
    from .api import run_batch as run_batch
    from .api import run_batch_sync as run_batch_sync
    from .api import status as status
    from .api import status_sync as status_sync
    from .api import wait as wait
    from .api import wait_sync as wait_sync
    from .context import FleetRun as FleetRun
    from .context import current_run as current_run
    from .context import idempotency_key as idempotency_key
    from .records import RunState as RunState
    from .status import AgentRunResult as AgentRunResult

_EXPORTS = {
    "api": (
        "AgentInput",
        "cancel",
        "cancel_sync",
        "results",
        "results_sync",
        "run_batch",
        "run_batch_sync",
        "status",
        "status_sync",
        "wait",
        "wait_sync",
    ),
    "context": ("FleetRun", "current_run", "idempotency_key"),
    "records": ("RunState",),
    "status": ("AgentRunResult",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'batchline.agents' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)

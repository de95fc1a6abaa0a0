"""A part's claim: the right to create its provider batch, held by one worker at a time (see `Store.claim_part`)."""

from __future__ import annotations

import threading
import time
import uuid
from types import TracebackType

from ..records import PartRecord
from ..store import Store

CANCEL = "cancelled"
"""The name of a cancel's claim on a part: it ends the part uncreated."""


def new_claim(name: str = "") -> str:
    """A claim's token, `name:time` (a fresh name by default): the time says when a claim has gone stale."""
    return f"{name or uuid.uuid4().hex}:{time.time()}"


def is_cancels(claim: str) -> bool:
    return claim.startswith(f"{CANCEL}:")


def is_live(part: PartRecord, claim_timeout: float) -> bool:
    """Whether the worker holding the part's claim may still be creating its batch: its own create has not failed
    (`create_failed_by`, that very claim's, not an earlier one's) and the claim is younger than `claim_timeout`."""
    claimed_at = float(part.claim.rpartition(":")[2])
    return part.create_failed_by != part.claim and time.time() - claimed_at < claim_timeout


class KeptClaim:
    """A claim renewed while its create is on its way, every third of `claim_timeout`.

    An upload longer than `claim_timeout` (200 MB on a slow link) made the claim look like a dead worker's: another
    worker listed the batches, found none (the batch is made once the upload ends) and created one too. Renewing
    swaps the token for one of the same name and a new time, from the token it holds only, so a takeover based on the
    old token fails. Whoever created meanwhile, the create goes on: only its claim is no longer renewed."""

    def __init__(self, store: Store, job_id: str, n: int, token: str, claim_timeout: float) -> None:
        self.store, self.job_id, self.n = store, job_id, n
        self.token = token
        self.every = claim_timeout / 3
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"batchline-claim-{job_id}-{n}", daemon=True)

    def _renew(self) -> None:
        name = self.token.rpartition(":")[0]
        while not self._stop.wait(self.every):
            renewed = new_claim(name)
            try:
                if not self.store.claim_part(self.job_id, self.n, renewed, over=self.token):
                    return
            except Exception:  # Redis away: the create's own calls meet it too; the next round tries again
                continue
            self.token = renewed

    def __enter__(self) -> KeptClaim:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

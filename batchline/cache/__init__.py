"""The response cache (a job created with `cache=True`): a request whose canonical body, model and endpoint match an
earlier successful answer gets that answer without being sent; a job's duplicate requests are sent once; two jobs
that share a request in flight send it once.

- `plan`: on the caller, each request's key and the job's duplicates, from the adapter's encoded bodies.
- `store`: the cache's Redis keys and the atomic steps on them (`scripts`), for the pipeline's steps to call.

How it stays safe: a request is sent by the job that holds its in-flight marker (`fly`), and only a part that is sent
at once takes one, so a job that waits never holds what another waits for (no deadlock). A job that waits looks
again on its own poll chain; when the holder's job has ended without a success for the request (failed, cancelled,
its marker left behind), the waiting job takes the marker and sends the request itself. Every request stays in
exactly one part of its job until it has a result, so a job always ends.
"""

from __future__ import annotations

from .plan import CachePlan, plan_requests
from .store import SCREENED, WAITING, CacheStore, Screened

__all__ = ["SCREENED", "WAITING", "CachePlan", "CacheStore", "Screened", "plan_requests"]

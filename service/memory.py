"""Keeping the server's resident memory flat under load (glibc only; elsewhere these do nothing).

Every thread that allocates gets its own malloc arena, and memory freed in an arena is seldom handed back: a
server whose thread pool computes theme reports (large, short-lived numpy and scikit-learn arrays) grows by tens
of MiB a minute although nothing is kept. Two arenas are enough for a process that mostly waits, and trimming
after each report hands the freed pages back.

Python's own collector is the other source of pauses: a full collection walks every object the process holds, and
a loaded model, hazm and the libraries are hundreds of thousands of them (a pause of about a tenth of a second every
few hundred requests). What is loaded at start lives as long as the process, so it is moved out of the collector's
sight once loaded (`gc.freeze`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)
M_ARENA_MAX = -8  # mallopt parameter (malloc.h)


@lru_cache(maxsize=1)
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def limit_arenas(count: int = 2) -> bool:
    """At most `count` malloc arenas for threads created from now on; True where glibc took it."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, count) == 1)


def release_memory() -> bool:
    """Hand freed heap pages back to the system; True where some were."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0) == 1)


def freeze_heap() -> int:
    """Collect once, then keep every object alive now out of later collections (a model just loaded); how many.
    What an earlier call froze is looked at again first, so a version swapped out is still collected."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()

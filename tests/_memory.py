"""Giving freed memory back to the system between heavy tests."""
from __future__ import annotations

import ctypes
import gc


def return_free_memory(everything: bool = True) -> None:
    """Collect Python's cycles, then hand the heap's free pages back (glibc keeps freed
    multi-MB tensors in its arenas otherwise; a no-op on other C libraries).

    The objects alive after the collection are frozen (``gc.freeze``): a later call with
    ``everything=False`` examines only the objects made since, which takes milliseconds,
    where a full collection with napari, Qt and torch loaded takes 0.2-0.5 s (it ran after
    each of the ~350 GUI tests).  ``everything=True`` (between modules) unfreezes first, so
    a cycle that became garbage after it was frozen is collected there at the latest.
    """
    if everything:
        gc.unfreeze()
    gc.collect()
    gc.freeze()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
        pass

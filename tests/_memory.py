"""Giving freed memory back to the system between heavy tests."""
from __future__ import annotations

import ctypes
import gc


def return_free_memory() -> None:
    """Collect Python's cycles, then hand the heap's free pages back (glibc keeps freed
    multi-MB tensors in its arenas otherwise; a no-op on other C libraries)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
        pass

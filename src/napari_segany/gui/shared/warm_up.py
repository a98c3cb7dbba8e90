"""Modules napari imports on the main thread at its first Labels or Points layer, imported
ahead in a background thread when a dock opens.

napari imports pandas (for layer features) when the first such layer is made: 0.3-0.45 s
on two cores, in one piece on the main thread, which the user sees as a frozen viewer at the
first image choice or the first result layer (docs/benchmarks.md, "What the remaining gaps
are made of").  Imported in a thread, the same work is interleaved with the event loop.
"""
from __future__ import annotations

import importlib
import sys
import threading

NAPARI_LAZY_IMPORTS = ("pandas",)


def import_in_background(modules=NAPARI_LAZY_IMPORTS) -> threading.Thread | None:
    """Start importing the ``modules`` not imported yet; the thread, or None if none."""
    missing = [name for name in modules if name not in sys.modules]
    if not missing:
        return None
    thread = threading.Thread(target=_import, args=(missing,), daemon=True,
                              name="napari-segany imports")
    thread.start()
    return thread


def _import(names) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:  # napari then imports it (or does without) as it would anyway
            pass

"""``bench_stalls.py``: Python's cyclic garbage collections during a job, and which thread ran
them.

A collection holds the GIL from start to end, so while one runs no other Python thread can
run: a full (generation 2) collection in a worker stalls the main thread as surely as one in
the main thread.  With napari, Qt and torch loaded (about 400,000 tracked objects) a full
collection takes about 0.2 s here; Python starts one by itself when enough objects have
survived earlier collections, in whichever thread happens to allocate at that moment.  The
probe records them so that the stall table can tell these pauses from the work of a job.
(The benchmark only listens: it never changes the collector's thresholds or state.)
"""
from __future__ import annotations

import gc
import threading
import time


class GcPauses:
    """Collections of ``floor_ms`` or more: (start, ms, generation, thread name)."""

    def __init__(self, floor_ms: float = 10.0):
        self.floor = floor_ms / 1000
        self.pauses: list[tuple[float, float, int, str]] = []
        self._started: dict[int, float] = {}
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        ident = threading.get_ident()
        if phase == "start":
            self._started[ident] = time.perf_counter()
            return
        start = self._started.pop(ident, None)
        if start is not None and time.perf_counter() - start >= self.floor:
            ms = 1000 * (time.perf_counter() - start)
            self.pauses.append((start, ms, info["generation"], threading.current_thread().name))

    def mark(self) -> int:
        return len(self.pauses)

    def longest_since(self, mark: int) -> tuple[float, str]:
        """The longest collection since ``mark``, as (ms, "gen 2 in a worker"); (0, "")."""
        if len(self.pauses) == mark:
            return 0.0, ""
        _, ms, generation, name = max(self.pauses[mark:], key=lambda p: p[1])
        where = "the main thread" if name == "MainThread" else "a worker"
        return ms, f"gen {generation} in {where}"

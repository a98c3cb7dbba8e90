"""``bench_stalls.py --profile``: what the main thread ran during the longest gap of a job.

A fresh ``cProfile.Profile`` is started at every tick of the probe's timer and stopped at the
next, so each profile covers exactly one interval between two ticks; the one of the longest
interval is kept.  cProfile sees only the main thread (the one that enabled it), which is the
thread a stall is about, and it times C calls too (a texture upload, a GL draw in software
OpenGL, a numpy copy), which the ``--where`` sampler cannot see when they hold the GIL.
Profiling slows Python code down (about 1.5x here): read the shares, not the absolute ms.
"""
from __future__ import annotations

import cProfile
import io
import pstats
import time

#: Frames of the event loop itself (always at the root of a gap): left out of the table.
LOOP = ("processEvents", "settle", "process_events_until", "_tick", "wait", "<lambda>",
        "measure", "__exit__", "event (qt_main_window", "StallProbe")


class GapProfiler:
    def __init__(self, rows: int = 18):
        self.rows = rows
        self.current: cProfile.Profile | None = None
        self.best: cProfile.Profile | None = None
        self.best_gap, self.last = 0.0, 0.0

    def start(self, now: float) -> None:
        self.best, self.best_gap, self.last = None, 0.0, now
        self._new()

    def tick(self, now: float) -> None:
        """Close the interval that just ended; keep its profile if it is the longest."""
        self.current.disable()
        if now - self.last > self.best_gap:
            self.best_gap, self.best = now - self.last, self.current
        self.last = now
        self._new()

    def stop(self) -> None:
        self.tick(time.perf_counter())
        self.current.disable()
        self.current = None
        print(f"    longest gap, profiled ({1000 * self.best_gap:.0f} ms with the profiler on):")
        print(self.table())

    def table(self) -> str:
        """The functions that took most of the gap (cumulative ms, own ms), outermost first."""
        stats = pstats.Stats(self.best, stream=io.StringIO())
        rows = []
        for (path, line, name), (_, calls, own, cum, _) in stats.stats.items():
            where = f"{name} ({short(path)}:{line})"
            if cum >= 0.005 and not any(part in where for part in LOOP):
                rows.append((cum, own, calls, where))
        rows.sort(reverse=True)
        return "\n".join(f"      {1000 * cum:7.1f} ms  {1000 * own:6.1f} own  {calls:5d} x  {where}"
                         for cum, own, calls, where in rows[:self.rows])

    def _new(self) -> None:
        self.current = cProfile.Profile()
        self.current.enable()


def short(path: str) -> str:
    """site-packages/napari/_vispy/canvas.py -> napari/_vispy/canvas"""
    for root in ("site-packages/", "src/"):
        if root in path:
            path = path.split(root, 1)[1]
    return path.removesuffix(".py")

"""The text of a long job's progress bar: what it does now ("decoding: 3/16 batches done")
and, once the pace can be told, about how long is left."""
from __future__ import annotations

import time

#: Time left is said only after this long: the first steps (loading, the first batch in
#: flight) tell little about the pace.
MIN_ELAPSED_S = 2.0


def duration(seconds: float) -> str:
    """"45 s", "3 min 20 s", "1 h 05 min"."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class ProgressText:
    """Formats Progress reports of one run (``restart()`` before the next): the message,
    then the time left from the pace since the first report."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._start: tuple[float, float] | None = None  # (time, fraction) of the first report

    def restart(self) -> None:
        self._start = None

    def time_left(self, fraction: float) -> float | None:
        now = self.clock()
        if self._start is None:
            self._start = (now, fraction)
            return None
        t0, f0 = self._start
        if now - t0 < MIN_ELAPSED_S or fraction <= f0 or fraction >= 1:
            return None
        return (now - t0) * (1 - fraction) / (fraction - f0)

    def format(self, report) -> str:
        """The progress bar's format for ``report`` (``%p%`` is Qt's percentage)."""
        left = self.time_left(report.fraction)
        eta = f", about {duration(left)} left" if left is not None else ""
        return f"{report.message}{eta} %p%" if report.message else f"%p%{eta}"

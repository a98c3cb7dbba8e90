"""Main-thread work cut into short steps, so that the viewer keeps drawing and answering.

Writing a few million label pixels through napari (undo history, partial refresh) takes
longer than a frame; :class:`TimedSteps` runs the steps of such a job from a zero-delay
QTimer, as many as fit in :data:`BUDGET_S` per turn of the event loop, and then lets the
loop run (a redraw, a click, the Cancel button) before the next turn.  Heavy preparation
belongs in a worker; what is left here is napari's API, which must run on the main thread.
"""
from __future__ import annotations

import time
from typing import Callable, Iterator

from qtpy.QtCore import QObject, QTimer

#: Main-thread time per event-loop turn (a 60 Hz frame is 16 ms; the goal is no stall > 50 ms).
BUDGET_S = 0.015


class TimedSteps(QObject):
    """Run the steps of ``steps`` (an iterator; each ``next`` is one step) within a time budget
    per event-loop turn; ``on_done()`` after the last, ``on_error(exc)`` if a step raises.

    ``stop()`` ends it between two steps (the caller undoes what its steps did)."""

    def __init__(self, steps: Iterator, on_done: Callable[[], None],
                 on_error: Callable[[Exception], None], parent=None, budget_s: float | None = None):
        super().__init__(parent)
        self.steps, self.on_done, self.on_error = steps, on_done, on_error
        self.budget_s = BUDGET_S if budget_s is None else budget_s
        self.running = True
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(0)
        self.timer.timeout.connect(self._turn)
        self.timer.start()

    def stop(self) -> None:
        self.running = False
        self.timer.stop()

    def _turn(self) -> None:
        end = time.perf_counter() + self.budget_s
        try:
            next(self.steps)  # at least one step per turn
            while self.running and time.perf_counter() < end:
                next(self.steps)
        except StopIteration:
            self.running = False
            self.on_done()
            return
        except Exception as exc:  # noqa: BLE001 (reported to the caller, never the event loop)
            self.running = False
            self.on_error(exc)
            return
        if self.running:
            self.timer.start()

"""Pixels a workflow job found (in its worker) written into a Labels layer without stalling
the viewer: in short steps on the main thread, recorded as one undo step.

Linking or relabelling a movie changes millions of pixels; one ``data_setitem`` of them all
held the main thread for as long as napari took to read, compare, record and redraw them.
:class:`PixelWrite` writes them 65,536 at a time from :class:`~..shared.steps.TimedSteps`
(at most 15 ms per event-loop turn) inside one :class:`~..shared.labels_io.UndoStep`, so one
Ctrl+Z on the layer still undoes the whole job, and a cancel puts back what was written.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
from qtpy.QtCore import QObject

from ..shared.labels_io import UndoStep, write_in_chunks
from ..shared.steps import TimedSteps

#: Pixels per ``data_setitem`` (the everything dock's commits use the same size).
CHUNK_PIXELS = 1 << 16
#: Each move of a progress bar repaints the window: at most this often.
PROGRESS_EVERY_S = 0.25


class PixelWrite(QObject):
    """``values`` written at ``indices`` (a tuple of index arrays) into ``layer``;
    ``on_progress(done, total)`` after each turn, ``on_end(n)`` at the end with the number of
    pixels given (None: cancelled or failed, nothing left written; ``on_error(exc)`` first
    for a failure)."""

    def __init__(self, layer, indices: tuple, values, on_end: Callable[[int | None], None],
                 on_error: Callable[[Exception], None],
                 on_progress: Callable[[int, int], None] | None = None, parent=None):
        super().__init__(parent)
        self.total = int(indices[0].size)
        self.on_end, self.on_error, self.on_progress = on_end, on_error, on_progress
        self.done_pixels = 0
        self.step = UndoStep(layer)
        self.steps = TimedSteps(self._counted(write_in_chunks(self.step, indices, values,
                                                              CHUNK_PIXELS)),
                                self._written, self._failed, self)

    @property
    def running(self) -> bool:
        return self.steps is not None

    def cancel(self) -> None:
        """Stop between two steps; every pixel written so far is put back."""
        if self.steps is None:
            return
        self.steps.stop()
        self.steps = None
        self.step.abort()
        self.on_end(None)

    def _counted(self, steps):
        shown = time.perf_counter()
        for _ in steps:
            self.done_pixels = min(self.total, self.done_pixels + CHUNK_PIXELS)
            if self.on_progress is not None and time.perf_counter() - shown > PROGRESS_EVERY_S:
                shown = time.perf_counter()
                self.on_progress(self.done_pixels, self.total)
            yield

    def _written(self) -> None:
        self.steps = None
        self.step.close()
        self.on_end(self.total)

    def _failed(self, exc: Exception) -> None:
        self.steps = None
        self.step.abort()
        self.on_error(exc)
        self.on_end(None)


def nothing_to_write(indices: tuple) -> bool:
    return not len(indices) or np.asarray(indices[0]).size == 0

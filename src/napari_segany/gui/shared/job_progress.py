"""The progress bar and Cancel button of a long job, as every dock shows them: both visible
only while the job runs, the bar starting from 0 each time and saying what the job does now
and, once the pace can be told, the time left (:class:`.progress_text.ProgressText`).

The two widgets are created here and laid out by the dock (most put them side by side with
:meth:`JobProgress.row`; the Segment Everything dock keeps Cancel beside its Run button)."""
from __future__ import annotations

import time

from qtpy.QtWidgets import QHBoxLayout, QProgressBar, QPushButton

from .progress_text import ProgressText
from .qt_helpers import hbox


class JobProgress:
    """``bar`` and ``cancel_button`` of one job at a time.

    ``steps``: the bar's range (0..steps). ``interval_s``: the bar moves at most this often
    (each move repaints the window, napari's canvas with it, and some jobs report many
    small steps); the last report (fraction 1) is always shown."""

    def __init__(self, steps: int = 100, interval_s: float = 0.0):
        self.steps, self.interval_s = steps, interval_s
        self.bar = QProgressBar()
        self.bar.setRange(0, steps)
        self.cancel_button = QPushButton("Cancel")
        self.text = ProgressText()
        self._shown_at = 0.0

    def row(self, *before) -> QHBoxLayout:
        """``before`` (e.g. the button that starts the job), the bar, then Cancel."""
        return hbox(*before, self.bar, self.cancel_button)

    def set_busy(self, busy: bool, bar_visible: bool | None = None) -> None:
        """Show the bar (unless ``bar_visible`` says otherwise) and Cancel while ``busy``.
        A new job can be cancelled again (a dock may disable Cancel once it was pressed)."""
        self.bar.setVisible(busy if bar_visible is None else bar_visible)
        self.cancel_button.setVisible(busy)
        if busy:
            self.cancel_button.setEnabled(True)
        self.bar.setValue(0)
        self.text.restart()
        self._shown_at = 0.0

    def show_fraction(self, fraction: float) -> None:
        self.bar.setValue(int(round(self.steps * fraction)))

    def show(self, report) -> None:
        """Move the bar to a Progress report: its fraction, message and the time left."""
        now = time.monotonic()
        if now - self._shown_at < self.interval_s and report.fraction < 1:
            return
        self._shown_at = now
        self.show_fraction(report.fraction)
        self.bar.setFormat(self.text.format(report))

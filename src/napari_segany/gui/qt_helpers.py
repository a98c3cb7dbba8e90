"""Small Qt helpers of the widgets: debounce timers and combo boxes set without side effects."""
from __future__ import annotations

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QComboBox


def single_shot_timer(parent, ms: int, slot) -> QTimer:
    """A timer that runs ``slot`` once, ``ms`` after its last ``start()`` (a debounce)."""
    timer = QTimer(parent)
    timer.setSingleShot(True)
    timer.setInterval(ms)
    timer.timeout.connect(slot)
    return timer


class signals_blocked:  # noqa: N801 (reads as the function-like context manager it is)
    """``with signals_blocked(control):`` set a control without running its handlers."""

    def __init__(self, control):
        self.control = control

    def __enter__(self):
        self._was = self.control.blockSignals(True)

    def __exit__(self, *exc):
        self.control.blockSignals(self._was)


def select_quietly(combo: QComboBox, text: str) -> None:
    """Show ``text`` in ``combo`` without it reporting a choice of the user."""
    with signals_blocked(combo):
        combo.setCurrentText(text)


def set_items(combo: QComboBox, items: list[str]) -> None:
    """Replace the items of ``combo``, keeping the current one if it is still there."""
    current = combo.currentText()
    with signals_blocked(combo):
        combo.clear()
        combo.addItems(items)
        if current in items:
            combo.setCurrentText(current)

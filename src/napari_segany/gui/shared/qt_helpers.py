"""Small Qt helpers of the widgets: debounce timers, rows of controls, combo boxes set
without side effects, and shutting a dock widget down when it is closed."""
from __future__ import annotations

from qtpy.QtCore import QEvent, QTimer
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel


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


def hbox(*controls) -> QHBoxLayout:
    """A row of ``controls``, left to right."""
    row = QHBoxLayout()
    for control in controls:
        row.addWidget(control)
    return row


def wrapped_label(text: str = "") -> QLabel:
    """A label whose long text wraps (status lines, messages) instead of widening the dock."""
    label = QLabel(text)
    label.setWordWrap(True)
    return label


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


class ShutsDownWhenClosed:
    """Mixin for a dock widget (before ``QWidget`` in the bases): ``_shut_down()`` runs when
    the widget is closed or when napari takes it out of its dock (the dock's close button,
    ``remove_dock_widget``), which does not close it: that is the end of the widget (a
    re-opened one is new)."""

    def _shut_down(self) -> None:
        raise NotImplementedError

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self._shut_down()
        super().closeEvent(event)

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
            elif getattr(self, "_docked", False):
                self._shut_down()
        return super().event(event)

"""A section of a dock that folds away: an arrow button with a title, and its content.

Rarely used settings live in collapsed sections, so that a dock fits a 1366 x 768 screen
(a hidden section takes no height: Qt leaves hidden widgets out of the layout); the dock's
controls sit in a scroll area (:func:`scrolling_body`) as the last resort, for a screen
smaller still or every section unfolded.
"""
from __future__ import annotations

from qtpy.QtCore import QSize, Qt, Signal
from qtpy.QtWidgets import QFrame, QScrollArea, QSizePolicy, QToolButton, QVBoxLayout, QWidget


class Collapsible(QWidget):
    """``title`` on an arrow button that shows or hides ``content`` (collapsed by default).
    ``toggled(expanded)`` after each change."""

    toggled = Signal(bool)

    def __init__(self, title: str, content: QWidget, expanded: bool = False, parent=None):
        super().__init__(parent)
        self.content = content
        self.button = QToolButton()
        self.button.setText(title)
        self.button.setCheckable(True)
        self.button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.button.setStyleSheet("QToolButton { border: none; font-weight: bold; }")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.button)
        layout.addWidget(content)
        self.button.toggled.connect(self.set_expanded)
        self.set_expanded(expanded)

    @property
    def expanded(self) -> bool:
        return self.button.isChecked()

    def set_expanded(self, expanded: bool) -> None:
        expanded = bool(expanded)
        if self.button.isChecked() != expanded:
            self.button.setChecked(expanded)  # comes back here through `toggled`
            return
        self.button.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.content.setVisible(expanded)
        self.toggled.emit(expanded)


class _Body(QScrollArea):
    """The scroll area around a dock's controls: it asks for the room its content wants
    (QScrollArea's own hint is capped at 24 lines), and scrolls only when the screen is
    smaller than that, e.g. with every section unfolded on a laptop."""

    def sizeHint(self):  # noqa: N802 (Qt's name)
        hint = self.widget().sizeHint()
        return QSize(hint.width() + self.verticalScrollBar().sizeHint().width(), hint.height())


def scrolling_body(dock_widget: QWidget) -> QVBoxLayout:
    """Give ``dock_widget`` a scroll area holding a content widget; returns the content's
    layout, where the dock's controls go (``dock_widget.body`` is the content widget)."""
    outer = QVBoxLayout(dock_widget)
    outer.setContentsMargins(0, 0, 0, 0)
    area = _Body()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    dock_widget.body = QWidget()
    area.setWidget(dock_widget.body)
    outer.addWidget(area)
    layout = QVBoxLayout(dock_widget.body)
    layout.setContentsMargins(4, 4, 4, 4)
    layout.setSpacing(4)
    return layout

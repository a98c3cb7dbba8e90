"""A weights-file field: a line edit, its Browse… button and, under it, what is wrong with the
chosen file.  The file is checked as soon as it is chosen (browsed: at once; typed: once the
text rests), by the dock's :class:`.file_check.FileChecks`; a refusal is shown while that
file is still the one chosen for that model.

The model panel's weights file and the Segment Everything dock's detector file are such
fields; each dock lays the three widgets out itself."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from qtpy.QtCore import QObject
from qtpy.QtWidgets import QFileDialog, QLabel, QLineEdit, QPushButton

from .qt_helpers import single_shot_timer, wrapped_label

CHECK_DEBOUNCE_MS = 300  # a path being typed is checked once it rests
REFUSED_STYLE = "color: #ff6b6b;"


def refused_file_label() -> QLabel:
    """Where a chosen weights file's refusal is said, under its field (hidden until then)."""
    label = wrapped_label()
    label.setStyleSheet(REFUSED_STYLE)
    label.setVisible(False)
    return label


class CheckedFileField(QObject):
    """``edit``, ``browse_button`` and ``label`` of one weights file.

    ``model()``: the registry model the file must hold (asked at each check: a panel's
    model can change). ``parent``: the widget showing the field (the dialog's parent).
    ``dialog``: the Browse… dialog's title and file filter."""

    def __init__(self, file_checks, model: Callable[[], str], parent, dialog: tuple[str, str]):
        super().__init__(parent)
        self.file_checks, self.model, self.dialog = file_checks, model, dialog
        self.edit = QLineEdit()
        self.browse_button = QPushButton("Browse…")
        self.label = refused_file_label()
        self._timer = single_shot_timer(self, CHECK_DEBOUNCE_MS, self.check)
        self.edit.textChanged.connect(self.choice_changed)
        self.browse_button.clicked.connect(self._browse)
        file_checks.checked.connect(self._show_verdict)

    @property
    def path(self) -> str:
        return self.edit.text().strip()

    def check(self) -> None:
        """Check the chosen file now (in a worker) as the model's weights."""
        self._timer.stop()
        self.file_checks.check_soon(self.model(), self.path)

    def choice_changed(self, *_) -> None:
        """The file or the model changed: the old verdict no longer holds."""
        self.label.setVisible(False)
        if self.path:
            self._timer.start()

    def _show_verdict(self, verdict) -> None:
        same_file = Path(verdict.path) == Path(self.path).expanduser()
        if verdict.model == self.model() and same_file:
            self.label.setText(verdict.problem)
            self.label.setVisible(verdict.refused)

    def _browse(self) -> None:
        title, file_filter = self.dialog
        path, _ = QFileDialog.getOpenFileName(self.parent(), title, "", file_filter)
        if path:
            self.edit.setText(path)
            self.check()

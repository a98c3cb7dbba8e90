"""Live min / max filters on the columns of an object table, and hiding the objects that fail.

:class:`FilterPanel` holds any number of filter rows (column, min, max; an empty field is an
open end) and emits ``changed`` as they are edited.  The dock evaluates them with the
engine's ``filter_objects`` (no painting) and :class:`ObjectHider` hides the failing
objects by giving the Labels layer a colormap in which they are transparent: the label
image itself is never rewritten, so a keystroke costs a colormap, not a repaint.
"""
from __future__ import annotations

import numpy as np
from napari.qt.threading import create_worker
from napari.utils.colormaps import DirectLabelColormap
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox, QHBoxLayout, QLineEdit, QPushButton, QToolButton, QVBoxLayout, QWidget,
)

from ..shared.qt_helpers import set_items

TRANSPARENT = np.zeros(4, np.float32)


class FilterRow(QWidget):
    """One filter: a column and its (min, max), either end empty for open."""

    changed = Signal()
    removed = Signal(object)

    def __init__(self, columns: list[str], parent=None):
        super().__init__(parent)
        self.column_combo = QComboBox()
        self.column_combo.addItems(columns)
        self.min_edit = QLineEdit()
        self.min_edit.setPlaceholderText("min")
        self.max_edit = QLineEdit()
        self.max_edit.setPlaceholderText("max")
        self.remove_button = QToolButton()
        self.remove_button.setText("×")
        self.remove_button.setToolTip("Remove this filter")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        for w in (self.column_combo, self.min_edit, self.max_edit, self.remove_button):
            row.addWidget(w)
        self.column_combo.currentTextChanged.connect(lambda _: self.changed.emit())
        self.min_edit.textChanged.connect(lambda _: self.changed.emit())
        self.max_edit.textChanged.connect(lambda _: self.changed.emit())
        self.remove_button.clicked.connect(lambda: self.removed.emit(self))

    @property
    def column(self) -> str:
        return self.column_combo.currentText()

    def bounds(self) -> tuple[float | None, float | None]:
        return _number(self.min_edit.text()), _number(self.max_edit.text())

    def set_bounds(self, low=None, high=None) -> None:
        self.min_edit.setText("" if low is None else f"{low:g}")
        self.max_edit.setText("" if high is None else f"{high:g}")


class FilterPanel(QWidget):
    """Filter rows on the columns of the current table; ``ranges()`` for ``filter_objects``."""

    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.columns: list[str] = []
        self.rows: list[FilterRow] = []
        self.add_button = QPushButton("Add filter")
        self.add_button.setEnabled(False)
        self._rows_box = QVBoxLayout()
        self._rows_box.setContentsMargins(0, 0, 0, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._rows_box)
        layout.addWidget(self.add_button)
        self.add_button.clicked.connect(lambda: self.add())

    def set_columns(self, columns: list[str]) -> None:
        """The filterable columns of a new table; rows on a column that is gone are removed."""
        self.columns = list(columns)
        for row in list(self.rows):
            if row.column not in self.columns:
                self._remove(row, emit=False)
            else:
                set_items(row.column_combo, self.columns)
        self.add_button.setEnabled(bool(self.columns))

    def add(self, column: str | None = None, low=None, high=None) -> FilterRow:
        row = FilterRow(self.columns)
        if column is not None:
            if column not in self.columns:
                raise ValueError(f"No column {column!r} to filter on: the table has "
                                 f"{', '.join(self.columns)}.")
            row.column_combo.setCurrentText(column)
        row.set_bounds(low, high)
        row.changed.connect(self.changed.emit)
        row.removed.connect(self._remove)
        self.rows.append(row)
        self._rows_box.addWidget(row)
        self.changed.emit()
        return row

    def clear(self) -> None:
        for row in list(self.rows):
            self._remove(row, emit=False)
        self.changed.emit()

    def ranges(self) -> dict[str, tuple]:
        """``{column: (min, max)}`` of the rows with at least one end; two rows on one column
        keep the tighter bounds."""
        out: dict[str, tuple] = {}
        for row in self.rows:
            low, high = row.bounds()
            if low is None and high is None:
                continue
            old_low, old_high = out.get(row.column, (None, None))
            out[row.column] = (_tighter(max, old_low, low), _tighter(min, old_high, high))
        return out

    def _remove(self, row: FilterRow, emit: bool = True) -> None:
        self.rows.remove(row)
        row.setParent(None)
        row.deleteLater()
        if emit:
            self.changed.emit()


class ObjectHider:
    """Hides objects of one Labels layer through its colormap: ``hide(layer, kept, hidden)``
    shows ``kept`` ids in their usual colours and makes ``hidden`` ids (and unlisted ones)
    transparent; ``restore()`` gives the layer its own colormap back.

    The colormap (one validated colour per object: about 50 ms for 2,000 objects) is built
    in a worker; only the latest request is applied."""

    def __init__(self):
        self.layer = None
        self.own = None  # the layer's colormap before hiding
        self._generation = 0
        self.pending = 0  # colormaps being built

    def hide(self, layer, kept: np.ndarray, hidden: np.ndarray) -> None:
        if self.layer is None or self.layer != layer:  # != : napari's proxies of one layer
            self.restore()
            self.layer, self.own = layer, layer.colormap
        self._generation += 1
        generation = self._generation
        worker = create_worker(hiding_colormap, self.own, kept, hidden, _start_thread=False,
                               _ignore_errors=True)
        worker.returned.connect(lambda colormap: self._apply(layer, generation, colormap))
        worker.finished.connect(self._done)
        self.pending += 1
        worker.start()

    def restore(self) -> None:
        self._generation += 1  # colormaps still being built are dropped
        if self.layer is not None and self.own is not None:
            self.layer.colormap = self.own
        self.layer = self.own = None

    def _apply(self, layer, generation: int, colormap) -> None:
        if generation == self._generation and self.layer is not None and self.layer == layer:
            layer.colormap = colormap

    def _done(self, *_) -> None:
        self.pending -= 1


def hiding_colormap(own, kept: np.ndarray, hidden: np.ndarray) -> DirectLabelColormap:
    """``own``'s colours for the ``kept`` ids, transparent for the others."""
    kept = np.asarray(kept, np.int64)
    colours = own.map(kept) if kept.size else np.zeros((0, 4), np.float32)
    color_dict = {None: TRANSPARENT, 0: TRANSPARENT}
    color_dict.update({int(i): TRANSPARENT for i in np.asarray(hidden, np.int64)})
    color_dict.update({int(i): c for i, c in zip(kept, colours)})
    if len(color_dict) == 2:  # napari takes {None, 0} alone for "no direct colours"
        color_dict[int(np.iinfo(np.int32).max)] = TRANSPARENT
    return DirectLabelColormap(color_dict=color_dict)


def _number(text: str) -> float | None:
    try:
        return float(text.strip().replace(",", "."))
    except ValueError:
        return None


def _tighter(pick, old, new):
    if old is None:
        return new
    return old if new is None else pick(old, new)

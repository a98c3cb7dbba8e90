"""Min / max filters on the columns of an object table, edited live.

:class:`RangeFilters` holds any number of rows (column, min, max; an empty field is an open
end) and emits ``changed`` as they are edited; ``ranges()`` gives them as the engine's
``filter_objects`` takes them.  Used by the Object Table dock and by the Segment Everything
dock's feature filters.
"""
from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox, QHBoxLayout, QLineEdit, QPushButton, QToolButton, QVBoxLayout, QWidget,
)

from .qt_helpers import set_items


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


class RangeFilters(QWidget):
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


def _number(text: str) -> float | None:
    try:
        return float(text.strip().replace(",", "."))
    except ValueError:
        return None


def _tighter(pick, old, new):
    if old is None:
        return new
    return old if new is None else pick(old, new)

"""The object table as a Qt model: numpy columns shown by a QTableView, sorted and filtered
with numpy (no item per cell, no Python call per row), so a table of thousands of objects
is filled, sorted and filtered in milliseconds; only the cells on screen are formatted."""
from __future__ import annotations

import numpy as np
from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt

DISPLAY = Qt.ItemDataRole.DisplayRole


class ObjectTableModel(QAbstractTableModel):
    """Rows of ``table`` (a dict of equal-length columns) that pass ``keep``, in the order of
    the last sort.  ``table_row(view_row)`` / ``view_row(table_row)`` map between the two."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.names: list[str] = []
        self.columns: dict[str, np.ndarray] = {}
        self.shown = np.zeros(0, np.int64)  # table rows, in view order
        self._order = np.zeros(0, np.int64)  # all table rows, sorted
        self._keep = np.zeros(0, bool)

    # --- content ----------------------------------------------------------------------------
    def set_table(self, table: dict) -> None:
        self.beginResetModel()
        self.names = list(table)
        self.columns = {name: np.asarray(values) for name, values in table.items()}
        n = len(self.columns[self.names[0]]) if self.names else 0
        self._order, self._keep = np.arange(n), np.ones(n, bool)
        self._update()
        self.endResetModel()

    def set_keep(self, keep: np.ndarray) -> None:
        """Show only the table rows where ``keep`` is True."""
        self.beginResetModel()
        self._keep = np.asarray(keep, bool)
        self._update()
        self.endResetModel()

    def table_row(self, view_row: int) -> int:
        return int(self.shown[view_row])

    def view_row(self, table_row: int) -> int:
        """The view row of a table row, -1 when it is filtered out."""
        where = np.flatnonzero(self.shown == table_row)
        return int(where[0]) if where.size else -1

    def _update(self) -> None:
        self.shown = self._order[self._keep[self._order]]

    # --- Qt's model interface ---------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 (Qt's names)
        return 0 if parent.isValid() else len(self.shown)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.names)

    def data(self, index, role=DISPLAY):
        if role != DISPLAY or not index.isValid():
            return None
        return _shown(self.columns[self.names[index.column()]][self.shown[index.row()]])

    def headerData(self, section, orientation, role=DISPLAY):  # noqa: N802
        if role != DISPLAY:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return self.names[section] if section < len(self.names) else None
        return str(section + 1)

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        """Sort by a column (numbers as numbers; NaN last either way)."""
        if not 0 <= column < len(self.names):
            return
        values = self.columns[self.names[column]].astype(np.float64)
        order_ = np.argsort(values, kind="stable")  # NaN go last
        if order == Qt.SortOrder.DescendingOrder:
            finite = ~np.isnan(values[order_])
            order_ = np.r_[order_[finite][::-1], order_[~finite]]
        self.beginResetModel()  # the view's selection goes: the dock selects the object again
        self._order = order_
        self._update()
        self.endResetModel()


def _shown(value):
    """A value as the table shows it: integers as they are, floats to 4 decimals."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float):
        if np.isnan(value):
            return "nan"
        return f"{value:.4g}" if abs(value) >= 1e5 else str(round(value, 4))
    return str(value)

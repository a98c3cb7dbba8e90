"""The "Object Table" dock: measurements of every object of a Labels layer, as a sortable
table and as the layer's ``features``; selecting a row selects the object; live filters
hide the objects that fail them; CSV export.

Scripting::

    dock, w = viewer.window.add_plugin_dock_widget("napari-segany", "Object Table")
    w.set_layers("SegAny labels", image="cells")  # the image gives the intensity columns
    table = w.measure()                            # dict of columns; waits
    w.add_filter("area", 50, None)                 # live; objects outside are hidden
    w.select_object(12)                            # selected label, view centred on it
    w.export_csv("objects.csv")                    # the rows that pass the filters

Measuring (``object_features``: area, perimeter, solidity, circularity, eccentricity, mean
and max intensity) runs in a worker; for a stack, the shown plane is measured, and again
when another plane is shown.  ``layer.features`` gets the rows with an ``index`` column (the
label of each row, how napari maps rows to label values).
"""
from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView, QCheckBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
    QLineEdit, QPushButton, QTableView, QVBoxLayout, QWidget,
)

from ...engine.progress import Progress
from ...engine.workflows.features import filter_objects, object_features, write_features_csv
from ..shared.qt_helpers import ShutsDownWhenClosed, signals_blocked, single_shot_timer
from ..shared.workers import process_events_until
from .common import JobPanel, LayerPicker
from ..shared.range_filters import RangeFilters
from .table_filters import ObjectHider
from .table_model import ObjectTableModel

NO_IMAGE = "(no image)"
FILTER_DEBOUNCE_MS = 80
PLANE_DEBOUNCE_MS = 150
HIDDEN_COLUMNS = ("label", "plane")  # not offered as filters


class ObjectTableWidget(ShutsDownWhenClosed, QWidget):
    """Measure, browse, filter and export the objects of a Labels layer."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.closed = False
        self.table: dict | None = None
        self.centroids: np.ndarray | None = None  # (rows, 2) of the measured plane
        self.keep: np.ndarray | None = None  # rows passing the filters
        self.measured: tuple | None = None  # (layer, plane index or None) of the table
        self.selected_row: int | None = None  # the table row of the object selected here
        self.hider = ObjectHider()
        self._build_ui()
        self._filter_timer = single_shot_timer(self, FILTER_DEBOUNCE_MS, self.apply_filters)
        self._plane_timer = single_shot_timer(self, PLANE_DEBOUNCE_MS, self._plane_changed)
        self.viewer.dims.events.current_step.connect(self._on_step)

    # ============================ public API ===============================================
    def set_layers(self, labels, image=None) -> None:
        self.labels_picker.choose(labels)
        self.image_picker.choose(image if image is not None else NO_IMAGE)

    def measure(self, wait: bool = True) -> dict | None:
        """Measure the chosen layer (its shown plane for a stack); the table when ``wait``."""
        self._start_measure()
        if wait:
            self.jobs.wait()
        return self.table

    def add_filter(self, column: str, low=None, high=None, wait: bool = True) -> None:
        """A live filter: objects with ``column`` outside [low, high] are hidden."""
        self.filters.add(column, low, high)
        self.apply_filters()
        if wait:
            self.wait()

    def clear_filters(self) -> None:
        self.filters.clear()
        self.apply_filters()

    def select_object(self, label: int) -> None:
        """Select ``label`` on the layer and centre the view on it (its table row too)."""
        rows = np.flatnonzero(self.table["label"] == label) if self.table else []
        if not len(rows):
            show_info(f"No object {label} in the table.")
            return
        self._select_row_of(int(rows[0]))

    def export_csv(self, path=None, wait: bool = True) -> None:
        if path is not None:
            self.csv_edit.setText(str(path))
        self._start_export()
        if wait:
            self.jobs.wait()

    def wait(self, timeout: float = 600.0) -> None:
        """Until the running job has finished and the objects are hidden as the filters say."""
        self.jobs.wait(timeout)
        process_events_until(lambda: not (self.hider.pending or self._filter_timer.isActive()),
                             timeout, "The Object Table dock")

    # ============================ UI =======================================================
    def _build_ui(self) -> None:
        self.labels_picker = LayerPicker(self.viewer, Labels, accept=lambda l: l.data.ndim in (2, 3))
        self.image_picker = LayerPicker(self.viewer, Image, accept=self._fits_labels,
                                        none_text=NO_IMAGE)
        self.follow_check = QCheckBox("Measure the shown plane again when it changes")
        self.follow_check.setChecked(True)
        self.measure_button = QPushButton("Measure")
        self.model = ObjectTableModel(self)
        self.grid = QTableView()
        self.grid.setModel(self.model)
        self.grid.setSortingEnabled(True)
        self.grid.sortByColumn(0, Qt.SortOrder.AscendingOrder)  # Qt's default is descending
        self.grid.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.grid.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.filters = RangeFilters()
        self.count_label = QLabel("No table yet: Measure.")
        self.csv_edit = QLineEdit()
        self.csv_edit.setPlaceholderText("objects.csv")
        self.browse_button = QPushButton("Browse…")
        self.export_button = QPushButton("Export CSV")
        self.jobs = JobPanel(self)
        form = QFormLayout()
        form.addRow("Labels", self.labels_picker)
        form.addRow("Image", self.image_picker)
        form.addRow(self.follow_check)
        form.addRow(self.measure_button)
        filters = QGroupBox("Filters (live: objects outside are hidden)")
        QVBoxLayout(filters).addWidget(self.filters)
        csv_row = QHBoxLayout()
        for w in (self.csv_edit, self.browse_button, self.export_button):
            csv_row.addWidget(w)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.jobs)
        layout.addWidget(self.grid, 1)
        layout.addWidget(self.count_label)
        layout.addWidget(filters)
        layout.addLayout(csv_row)
        self.labels_picker.currentTextChanged.connect(lambda _: self.image_picker.refresh())
        self.measure_button.clicked.connect(lambda: self._start_measure())
        self.grid.selectionModel().selectionChanged.connect(lambda *_: self._on_row_selected())
        self.model.modelReset.connect(self._show_selected_row)
        self.filters.changed.connect(lambda: self._filter_timer.start())
        self.browse_button.clicked.connect(self._browse)
        self.export_button.clicked.connect(lambda: self._start_export())

    def _fits_labels(self, image) -> bool:
        labels = self.labels_picker.layer() if hasattr(self, "labels_picker") else None
        shape = tuple(image.data.shape[:-1] if image.rgb else image.data.shape)
        return labels is not None and shape == tuple(labels.data.shape)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Object table", self.csv_edit.text(),
                                              "CSV (*.csv)")
        if path:
            self.csv_edit.setText(path)

    # ============================ measuring ================================================
    def _start_measure(self, quiet: bool = False) -> None:
        layer = self.labels_picker.layer()
        if layer is None:
            if not quiet:
                show_error("No Labels layer to measure: pick one (2D, or a stack).")
            return
        image = self.image_picker.layer()
        plane = self._shown_plane(layer)
        labels = layer.data if plane is None else layer.data[plane]
        pixels = None if image is None else (image.data if plane is None else image.data[plane])
        self.jobs.start(_measure_job(labels, pixels), "Measuring",
                        lambda out: self._measured(layer, plane, *out))

    def _shown_plane(self, layer) -> int | None:
        if layer.data.ndim == 2:
            return None
        z = layer.world_to_data(self.viewer.dims.point)[0]
        return int(min(max(round(z), 0), layer.data.shape[0] - 1))

    def _measured(self, layer, plane, table, centroids) -> None:
        if layer not in self.viewer.layers:
            return
        if self.measured is not None and self.measured[0] != layer:
            self.hider.restore()
        self.table, self.centroids, self.measured = table, centroids, (layer, plane)
        if plane is not None:
            table = {"plane": np.full(len(table["label"]), plane, np.int64), **table}
            self.table = table
        layer.features = {"index": table["label"], **table}
        self.selected_row = None
        self.model.set_table(table)
        header = self.grid.horizontalHeader()
        if header.sortIndicatorSection() < len(table):  # keep the user's sort
            self.model.sort(header.sortIndicatorSection(), header.sortIndicatorOrder())
        self.filters.set_columns([c for c in table if c not in HIDDEN_COLUMNS])
        self.apply_filters()

    def _on_step(self, event=None) -> None:
        if self.measured is not None and self.measured[1] is not None and self.follow_check.isChecked():
            self._plane_timer.start()

    def _plane_changed(self) -> None:
        layer, plane = self.measured
        if layer in self.viewer.layers and self._shown_plane(layer) != plane and not self.jobs.busy:
            self._start_measure(quiet=True)

    # ============================ selection ================================================
    def _on_row_selected(self) -> None:
        rows = self.grid.selectionModel().selectedRows()
        if rows and self.table is not None:
            self._select_row_of(self.model.table_row(rows[0].row()), from_grid=True)

    def _select_row_of(self, row: int, from_grid: bool = False) -> None:
        layer, plane = self.measured
        self.selected_row = row
        layer.selected_label = int(self.table["label"][row])
        point = ([plane] if plane is not None else []) + list(self.centroids[row])
        world = layer.data_to_world(point)
        if plane is not None:
            self.viewer.dims.set_point(0, world[0])
        camera = self.viewer.scene.camera if hasattr(self.viewer, "scene") else self.viewer.camera
        camera.center = tuple(world[-2:])
        if not from_grid:
            self._show_selected_row()

    def _show_selected_row(self) -> None:
        """Select (quietly) the view row of the object selected, after a sort or a filter."""
        view_row = -1 if self.selected_row is None else self.model.view_row(self.selected_row)
        if view_row >= 0:
            with signals_blocked(self.grid.selectionModel()):
                self.grid.selectRow(view_row)
            self.grid.viewport().update()

    # ============================ filters ==================================================
    def apply_filters(self) -> None:
        """Evaluate the filters now (they are debounced while typing)."""
        self._filter_timer.stop()
        if self.table is None or self.measured[0] not in self.viewer.layers:
            return
        ranges = self.filters.ranges()
        layer = self.measured[0]
        labels = np.asarray(self.table["label"])
        if not ranges:
            self.keep = np.ones(len(labels), bool)
            self.hider.restore()
        else:
            self.keep = filter_objects(None, self.table, paint=False, **ranges).keep
            self.hider.hide(layer, labels[self.keep], labels[~self.keep])
        self.model.set_keep(self.keep)
        self.count_label.setText(f"{int(self.keep.sum())} of {len(labels)} objects pass the filters"
                                 if ranges else f"{len(labels)} objects")

    # ============================ export ===================================================
    def _start_export(self) -> None:
        path = self.csv_edit.text().strip()
        if self.table is None:
            show_error("No table to export: Measure first.")
            return
        if not path:
            show_error("Choose a CSV file first (Browse…).")
            return
        keep = self.keep if self.keep is not None else slice(None)
        rows = {name: np.asarray(values)[keep] for name, values in self.table.items()}
        self.jobs.start(_csv_job(rows, path), "CSV export",
                        lambda written: show_info(f"{len(rows['label'])} objects written to "
                                                  f"{written}."))

    # ============================ closing ==================================================
    def _shut_down(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.jobs.cancel()
        self._filter_timer.stop()
        self._plane_timer.stop()
        self.viewer.dims.events.current_step.disconnect(self._on_step)
        for picker in (self.labels_picker, self.image_picker):
            picker.disconnect_viewer()


def _measure_job(labels, image):
    """The table and the centroids (row, col) of one plane's objects (in a worker)."""
    from scipy import ndimage

    yield Progress(0, 2, "measuring")
    labels = np.asarray(labels)
    table = object_features(labels, None if image is None else np.asarray(image))
    yield Progress(1, 2, "centroids")
    ids = table["label"]
    centroids = np.asarray(ndimage.center_of_mass(np.ones(labels.shape, np.uint8), labels, ids),
                           np.float64).reshape(len(ids), 2)
    return table, centroids


def _csv_job(rows: dict, path):
    yield Progress(0, 1, "writing")
    return write_features_csv(rows, path)

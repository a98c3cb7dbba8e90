"""The controls of the Segment Everything widget and their layout (no behaviour here)."""
from __future__ import annotations

from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
    QProgressBar, QPushButton, QVBoxLayout,
)

from .model import DetectorRow, EverythingModelPanel
from .params import METHOD_TITLES, FilterPanel, MethodParams
from .tiling import TilingPanel
from ..shared.image_controls import image_controls

SCOPES = ("Shown slice", "All slices")


def build_controls(w) -> None:
    """Create the widget's controls as attributes of ``w`` and lay them out."""
    data, form = image_controls(w)
    w.scope_combo = QComboBox()
    w.scope_combo.addItems(SCOPES)
    w.method_combo = QComboBox()
    w.method_combo.addItems(list(METHOD_TITLES.values()))
    w.model_panel = EverythingModelPanel()
    w.detector_row = DetectorRow(w.model_panel.file_checks)
    w.detector_label = QLabel("Detector")
    w.params = MethodParams()
    w.tiling = TilingPanel()
    w.run_button = QPushButton("Segment everything")
    w.cancel_button = QPushButton("Cancel")
    w.progress = QProgressBar()
    w.progress.setRange(0, 1000)
    w.filters = FilterPanel()
    w.count_label = QLabel("No result yet.")
    w.target_combo = QComboBox()
    w.preserve_check = QCheckBox("Preserve existing labels")
    w.preserve_check.setChecked(True)
    w.commit_button = QPushButton("Commit to Labels")
    w.status_label = QLabel("Pick an image and a method, then Segment everything.")
    w.status_label.setWordWrap(True)

    form.addRow("Run on", w.scope_combo)
    method = QGroupBox("Method")
    mform = QFormLayout(method)
    mform.addRow("Method", w.method_combo)
    mform.addRow(w.model_panel)
    mform.addRow(w.detector_label, w.detector_row)
    mform.addRow(w.params)
    run_row = QHBoxLayout()
    run_row.addWidget(w.run_button)
    run_row.addWidget(w.cancel_button)
    filters = QGroupBox("Filters (live)")
    fbox = QVBoxLayout(filters)
    fbox.addWidget(w.filters)
    fbox.addWidget(w.count_label)
    commit = QGroupBox("Commit")
    cform = QFormLayout(commit)
    cform.addRow("Into", w.target_combo)
    cform.addRow(w.preserve_check)
    cform.addRow(w.commit_button)
    layout = QVBoxLayout(w)
    for box in (data, method, w.tiling):
        layout.addWidget(box)
    layout.addLayout(run_row)
    layout.addWidget(w.progress)
    for box in (filters, commit, w.status_label):
        layout.addWidget(box)
    layout.addStretch(1)


def set_busy(w, busy: bool) -> None:
    """Run / Cancel / progress / Commit while a run is (not) under way."""
    w.run_button.setEnabled(not busy)
    w.cancel_button.setVisible(busy)
    w.cancel_button.setEnabled(busy)
    w.progress.setVisible(busy)
    w.progress.setValue(0)
    w.commit_button.setEnabled(not busy)


def show_progress(w, report) -> None:
    """Move the progress bar to a Progress report (its message in the bar)."""
    w.progress.setValue(int(round(1000 * report.fraction)))
    w.progress.setFormat(f"{report.message} %p%" if report.message else "%p%")

"""The controls of the Segment Everything widget and their layout (no behaviour here)."""
from __future__ import annotations

import time

from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
    QProgressBar, QPushButton, QVBoxLayout,
)

from ..shared.collapsible import Collapsible, scrolling_body
from ..shared.image_controls import image_controls
from ..shared.progress_text import ProgressText
from .linking import SCOPES, LinkScope
from .model import DetectorRow, EverythingModelPanel
from .params import METHOD_TITLES, FilterPanel, MethodParams
from .tiling import TilingPanel

PROGRESS_INTERVAL_S = 0.25


def build_controls(w) -> None:
    """Create the widget's controls as attributes of ``w`` and lay them out."""
    data, form = image_controls(w)
    w.scope_combo = QComboBox()
    w.scope_combo.addItems(SCOPES)
    w.link_scope = LinkScope(w.scope_combo)
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
    w.progress_text = ProgressText()
    w.filters = FilterPanel()
    w.count_label = QLabel("No result yet.")
    w.target_combo = QComboBox()
    w.preserve_check = QCheckBox("Preserve existing labels")
    w.preserve_check.setChecked(True)
    w.commit_button = QPushButton("Commit to Labels")
    w.status_label = QLabel("Pick an image and a method, then Segment everything.")
    w.status_label.setWordWrap(True)

    w.scope_combo.setToolTip("Run on the shown slice, or on every slice of the stack (3D "
                             "stacks: also linked into 3D objects, one id per object)")
    layout = scrolling_body(w)  # collapsed sections keep it on a laptop screen
    w.params_section = Collapsible("Parameters", w.params)
    w.tiling_section = Collapsible("Large images (tiling)", w.tiling)
    for part in (data, _method_box(w), w.tiling_section):
        layout.addWidget(part)
    layout.addLayout(_row(w.run_button, w.scope_combo, w.link_scope.iou, w.cancel_button))
    layout.addWidget(w.progress)
    layout.addWidget(_result_box(w))
    layout.addWidget(w.status_label)
    layout.addStretch(1)


def _method_box(w) -> QGroupBox:
    method = QGroupBox("Method")
    form = QFormLayout(method)
    form.addRow("Method", w.method_combo)
    form.addRow(w.model_panel)
    form.addRow(w.detector_label, w.detector_row)
    form.addRow(w.params_section)
    return method


def _result_box(w) -> QGroupBox:
    """Live filters, the count, and the commit of what they keep."""
    box = QGroupBox("Filters (live) and commit")
    column = QVBoxLayout(box)
    column.addWidget(w.filters)
    column.addWidget(w.count_label)
    into = QHBoxLayout()
    into.addWidget(QLabel("Into"))
    into.addWidget(w.target_combo, 1)
    into.addWidget(w.commit_button)
    column.addLayout(into)
    column.addWidget(w.preserve_check)
    return box


def _row(*controls) -> QHBoxLayout:
    row = QHBoxLayout()
    for control in controls:
        row.addWidget(control)
    return row


def set_busy(w, busy: bool) -> None:
    """Run / Cancel / progress / Commit while a run is (not) under way."""
    w.run_button.setEnabled(not busy)
    w.cancel_button.setVisible(busy)
    w.cancel_button.setEnabled(busy)
    w.progress.setVisible(busy)
    w.progress.setValue(0)
    w.progress_text.restart()
    w.commit_button.setEnabled(not busy)


def show_progress(w, report) -> None:
    """Move the progress bar to a Progress report (its message and the time left in the bar),
    at most every PROGRESS_INTERVAL_S: each move repaints the window (with napari's canvas),
    and a decoder reports many small batches."""
    now = time.monotonic()
    if now - getattr(w, "progress_shown_at", 0.0) < PROGRESS_INTERVAL_S and report.fraction < 1:
        return
    w.progress_shown_at = now
    w.progress.setValue(int(round(1000 * report.fraction)))
    w.progress.setFormat(w.progress_text.format(report))

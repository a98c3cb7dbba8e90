"""The controls of the Segment Everything widget and their layout (no behaviour here)."""
from __future__ import annotations

from qtpy.QtWidgets import (
    QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout,
)

from ..shared.collapsible import Collapsible, scrolling_body
from ..shared.image_controls import image_controls
from ..shared.job_progress import JobProgress
from ..shared.labels_io import preserve_labels_check
from ..shared.qt_helpers import hbox, wrapped_label
from .linking import SCOPES, LinkScope
from .method_controls import MethodControls
from .params import FilterPanel
from .tiling import TilingPanel

#: A decoder reports many small batches; moving the bar repaints the window (and napari's
#: canvas) each time.
PROGRESS_INTERVAL_S = 0.25


def build_controls(w) -> None:
    """Create the widget's controls as attributes of ``w`` and lay them out."""
    data, form = image_controls(w)
    w.scope_combo = QComboBox()
    w.scope_combo.addItems(SCOPES)
    w.link_scope = LinkScope(w.scope_combo)
    w.method_controls = MethodControls()
    # the parts scripts and the run controller reach directly
    w.model_panel, w.detector_row = w.method_controls.model_panel, w.method_controls.detector_row
    w.params = w.method_controls.params
    w.tiling = TilingPanel()
    w.run_button = QPushButton("Segment everything")
    w.job_progress = JobProgress(1000, PROGRESS_INTERVAL_S)
    w.progress, w.cancel_button = w.job_progress.bar, w.job_progress.cancel_button
    w.filters = FilterPanel()
    w.count_label = QLabel("No result yet.")
    w.target_combo = QComboBox()
    w.preserve_check = preserve_labels_check()
    w.commit_button = QPushButton("Commit to Labels")
    w.status_label = wrapped_label("Pick an image and a method, then Segment everything.")

    w.scope_combo.setToolTip("Run on the shown slice, or on every slice of the stack (3D "
                             "stacks: also linked into 3D objects, one id per object)")
    layout = scrolling_body(w)  # collapsed sections keep it on a laptop screen
    w.params_section = Collapsible("Parameters", w.params)
    w.tiling_section = Collapsible("Large images (tiling)", w.tiling)
    for part in (data, _method_box(w), w.tiling_section):
        layout.addWidget(part)
    layout.addLayout(hbox(w.run_button, w.scope_combo, w.link_scope.iou, w.cancel_button))
    layout.addWidget(w.progress)
    layout.addWidget(_result_box(w))
    layout.addWidget(w.status_label)
    layout.addStretch(1)


def _method_box(w) -> QGroupBox:
    method = QGroupBox("Method")
    form = QFormLayout(method)
    w.method_controls.add_rows(form)
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


def set_busy(w, busy: bool) -> None:
    """Run / Cancel / progress / Commit while a run is (not) under way."""
    w.run_button.setEnabled(not busy)
    w.job_progress.set_busy(busy)
    w.commit_button.setEnabled(not busy)

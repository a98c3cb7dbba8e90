"""The widgets of the Propagate panel and their layout (the panel wires them up)."""
from __future__ import annotations

from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QPushButton,
    QSpinBox, QVBoxLayout, QWidget,
)

from ...engine.propagation import StopRules
from ..shared.collapsible import Collapsible
from ..shared.job_progress import JobProgress
from ..shared.qt_helpers import wrapped_label
from . import propagation_run as runs

DIRECTIONS = {"both": "Both ways", "forward": "Forward (+)", "backward": "Backward (−)"}
METHODS = {runs.SLICES: "Slice by slice (one object)",
           runs.MEMORY: "SAM 2 memory (every object)"}


def build_controls(panel) -> None:
    """Create the panel's controls as its attributes and lay them out."""
    panel.method_combo = QComboBox()
    for key, text in METHODS.items():
        panel.method_combo.addItem(text, key)
    panel.method_combo.setToolTip("SAM 2 memory: every object of the shown Labels slice, "
                                 "followed by SAM 2's memory (load a SAM 2 model); "
                                 "click points on any slice to correct, then propagate again")
    panel.axis_combo = QComboBox()
    panel.direction_combo = QComboBox()
    for key, text in DIRECTIONS.items():
        panel.direction_combo.addItem(text, key)
    panel.from_spin, panel.to_spin = QDoubleSpinBox(), QDoubleSpinBox()
    panel.range_label = QLabel()
    panel.object_spin = QSpinBox()
    panel.object_spin.setRange(0, 2 ** 31 - 1)
    panel.object_spin.setSpecialValueText("last committed")
    panel.score_spin = _spin(0.0, 1.0, 0.05, StopRules.min_score, 2)
    panel.score_spin.setToolTip("Stop where the model's predicted IoU falls below this")
    panel.area_spin = _spin(1.0, 100.0, 0.5, StopRules.max_area_ratio, 1, suffix=" ×")
    panel.area_spin.setToolTip("Stop where the area grows or shrinks by more than this "
                              "per step of one XY pixel size (thick slices allow more)")
    panel.past_empty_check = QCheckBox("Walk past empty slices")
    panel.overwrite_check = QCheckBox("Overwrite other objects")
    panel.propagate_button = QPushButton("Propagate (Shift+S)")
    panel.job_progress = JobProgress()
    panel.progress, panel.cancel_button = panel.job_progress.bar, panel.job_progress.cancel_button
    panel.ready_label = wrapped_label()  # what Propagate would do now, or what it needs
    panel.status_label = wrapped_label()  # the outcome of the last run on this image
    panel.status_label.setVisible(False)
    _lay_out(panel)


def _lay_out(panel) -> None:
    settings = QWidget()
    form = QFormLayout(settings)
    form.setContentsMargins(0, 0, 0, 0)
    form.addRow("Axis", panel.axis_combo)
    form.addRow("Direction", panel.direction_combo)
    range_row = QHBoxLayout()
    for w in (panel.from_spin, QLabel("to"), panel.to_spin):
        range_row.addWidget(w)
    form.addRow("Range", range_row)
    form.addRow("", panel.range_label)
    form.addRow("Object", panel.object_spin)
    form.addRow("Min score", panel.score_spin)
    form.addRow("Max area change", panel.area_spin)
    form.addRow(panel.past_empty_check)
    form.addRow(panel.overwrite_check)
    panel.settings_section = Collapsible("Settings (axis, range, object, stop rules)", settings)
    method_row = QFormLayout()
    method_row.addRow("Method", panel.method_combo)
    layout = QVBoxLayout(panel)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addLayout(method_row)
    for w in (panel.settings_section, panel.ready_label, panel.propagate_button):
        layout.addWidget(w)
    layout.addLayout(panel.job_progress.row())
    layout.addWidget(panel.status_label)


def _spin(lo, hi, step, value, decimals, suffix="") -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(lo, hi)
    spin.setSingleStep(step)
    spin.setDecimals(decimals)
    spin.setValue(value)
    spin.setSuffix(suffix)
    return spin

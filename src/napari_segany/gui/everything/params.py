"""Parameter forms of the everything widget: per-method settings and the live filters.

``MethodParams`` holds one form per method (what the run computes with; changing them
needs a new run).  ``FilterPanel`` holds the post-filters (they re-select masks of the
finished run, live, without recomputing) and emits ``changed``: the sliders of
``FilterSettings``, and min / max rows on any measured feature (``ranges()``, in a folded
section).
"""
from __future__ import annotations

from dataclasses import dataclass

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QSpinBox, QStackedWidget, QWidget,
)
from superqt import QLabeledDoubleSlider, QLabeledSlider

from ...engine.everything.presets import FilterSettings
from ..shared.collapsible import Collapsible
from ..shared.range_filters import RangeFilters

#: The feature columns offered before a run has measured anything (a one-channel image).
FEATURE_COLUMNS = ("area", "perimeter", "solidity", "circularity", "eccentricity",
                   "mean_intensity", "max_intensity", "score", "stability")

METHOD_TITLES = {
    "grid": "SAM grid (automatic mask generator)",
    "object_aware": "Object-aware prompts (MobileSAMv2)",
    "fastsam": "FastSAM (one pass)",
}


@dataclass(frozen=True)
class Field:
    """One numeric parameter: engine name, label, default, range, step (int when step is int)."""

    name: str
    label: str
    default: float
    low: float
    high: float
    step: float = 1
    tip: str = ""


# Official defaults (SAM's generator, MobileSAMv2, FastSAM); see docs/everything.md.
FIELDS = {
    "grid": (
        Field("points_per_side", "Points per side", 32, 4, 128, 1,
              "The grid has this many points per side: objects smaller than the spacing "
              "(image side / points) can be missed."),
        Field("pred_iou_thresh", "Min predicted IoU", 0.88, 0.0, 1.0, 0.01,
              "Masks the model itself rates lower are dropped during the run."),
        Field("stability_score_thresh", "Min stability", 0.95, 0.0, 1.0, 0.01,
              "Masks that change when the logit threshold moves are dropped during the run."),
        Field("box_nms_thresh", "Duplicate overlap (NMS)", 0.7, 0.0, 1.0, 0.01,
              "Of two masks whose boxes overlap more than this, the lower-scored goes."),
        Field("crop_n_layers", "Crop layers", 0, 0, 3, 1,
              "Also run on 2x2 (then 4x4...) overlapping crops: finds small objects, much slower."),
        Field("points_per_batch", "Points per batch", 64, 1, 1024, 1,
              "Prompts decoded at once: memory versus speed; results are the same."),
    ),
    "object_aware": (
        Field("conf", "Min detection score", 0.4, 0.0, 1.0, 0.01,
              "Boxes of the object-aware detector scoring lower are not prompted."),
        Field("iou", "Detector NMS IoU", 0.9, 0.0, 1.0, 0.01),
        Field("max_det", "Max objects", 300, 1, 3000, 1,
              "At most this many boxes are decoded (the highest scores)."),
        Field("imgsz", "Detector input size", 1024, 32, 4096, 32),
        Field("points_per_batch", "Boxes per batch", 64, 1, 1024, 1,
              "Boxes decoded at once: memory versus speed; results are the same."),
    ),
    "fastsam": (
        Field("conf", "Min score", 0.4, 0.0, 1.0, 0.01),
        Field("iou", "NMS IoU", 0.9, 0.0, 1.0, 0.01),
        Field("max_det", "Max objects", 300, 1, 3000, 1),
        Field("imgsz", "Input size", 1024, 32, 4096, 32),
    ),
}


def _spin(field: Field):
    integer = float(field.step).is_integer() and float(field.default).is_integer()
    box = QSpinBox() if integer else QDoubleSpinBox()
    if not integer:
        box.setDecimals(2)
    box.setRange(type(box.value())(field.low), type(box.value())(field.high))
    box.setSingleStep(type(box.value())(field.step))
    box.setValue(type(box.value())(field.default))
    box.setToolTip(field.tip)
    return box


class MethodParams(QStackedWidget):
    """One form per method; ``values()`` gives the engine keyword arguments of the current one."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.boxes: dict[str, dict[str, QWidget]] = {}
        for method, fields in FIELDS.items():
            page = QWidget()
            form = QFormLayout(page)
            form.setContentsMargins(0, 0, 0, 0)
            self.boxes[method] = {}
            for field in fields:
                box = _spin(field)
                form.addRow(field.label, box)
                self.boxes[method][field.name] = box
            if method == "object_aware":
                self.duplicates_check = QCheckBox("Remove duplicate masks (box NMS 0.7)")
                self.duplicates_check.setToolTip("Off in MobileSAMv2; the detector's own NMS runs anyway.")
                form.addRow(self.duplicates_check)
            if method == "fastsam":
                self.retina_check = QCheckBox("Full-resolution masks")
                self.retina_check.setChecked(True)
                form.addRow(self.retina_check)
            self.addWidget(page)
        self.method = "grid"

    def show_method(self, method: str) -> None:
        self.method = method
        self.setCurrentIndex(list(FIELDS).index(method))

    def values(self, method: str | None = None) -> dict:
        method = method or self.method
        params = {name: box.value() for name, box in self.boxes[method].items()}
        if method == "object_aware" and self.duplicates_check.isChecked():
            params["box_nms_thresh"] = 0.7
        if method == "fastsam":
            params["retina_masks"] = self.retina_check.isChecked()
        return params

    def set_values(self, method: str | None = None, **params) -> None:
        """Set parameters by engine name; raise ValueError for unknown ones."""
        method = method or self.method
        boxes = self.boxes[method]
        for name, value in params.items():
            if method == "object_aware" and name == "box_nms_thresh":
                self.duplicates_check.setChecked(value is not None)
            elif method == "fastsam" and name == "retina_masks":
                self.retina_check.setChecked(bool(value))
            elif name in boxes:
                boxes[name].setValue(type(boxes[name].value())(value))
            else:
                raise ValueError(f"{name!r} is not a parameter of the {method} form; known: "
                                 f"{', '.join(sorted(boxes))}.")


class FilterPanel(QWidget):
    """Live post-filters; ``settings()`` -> FilterSettings (0 / 100 % / unchecked = off)."""

    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        d = FilterSettings()
        self.min_area = _slider(QLabeledSlider, 0, 5000, d.min_area)
        self.min_area.setToolTip("Drop specks: masks smaller than this many pixels.")
        self.max_area = _slider(QLabeledSlider, 1, 100, int(100 * (d.max_area_fraction or 1)))
        self.max_area.setToolTip("Drop masks covering more than this % of the image (usually "
                                 "the background); 100 keeps all.")
        self.min_score = _slider(QLabeledDoubleSlider, 0.0, 1.0, d.min_score or 0.0)
        self.min_score.setToolTip("Drop masks with a lower predicted IoU (FastSAM: score); 0 keeps all.")
        self.min_stability = _slider(QLabeledDoubleSlider, 0.0, 1.0, d.min_stability or 0.0)
        self.min_stability.setToolTip("Drop masks with a lower stability score; 0 keeps all.")
        self.parts_check = QCheckBox("Drop parts inside larger masks:")
        self.parts_check.setToolTip("Remove masks lying mostly inside one larger mask (e.g. a "
                                    "nucleus inside its cell).")
        self.contained = _slider(QLabeledDoubleSlider, 0.5, 1.0, d.max_contained or 0.9)
        self.contained.setToolTip("A mask is a part when more than this fraction of it lies "
                                  "inside one larger mask.")
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Min area (px)", self.min_area)
        form.addRow("Max area (% image)", self.max_area)
        form.addRow("Min score", self.min_score)
        form.addRow("Min stability", self.min_stability)
        parts_row = QHBoxLayout()  # one row: the switch, then its threshold
        parts_row.addWidget(self.parts_check)
        parts_row.addWidget(self.contained, 1)
        form.addRow(parts_row)
        self.features = RangeFilters()
        self.features.set_columns(list(FEATURE_COLUMNS))
        self.features.add_button.setText("Add a feature filter")
        self.features.add_button.setToolTip("Keep the masks whose measure (area, shape, "
                                            "intensity, score...) lies in [min, max].")
        self.features_section = Collapsible("Filter by feature (min / max)", self.features)
        form.addRow(self.features_section)
        self.features.changed.connect(self.changed.emit)
        for slider in (self.min_area, self.max_area, self.min_score, self.min_stability, self.contained):
            slider.valueChanged.connect(lambda *_: self.changed.emit())
        self.parts_check.toggled.connect(lambda *_: self.changed.emit())
        self.parts_check.toggled.connect(self.contained.setEnabled)
        self.parts_check.setChecked(d.max_contained is not None)
        self.contained.setEnabled(self.parts_check.isChecked())

    def settings(self) -> FilterSettings:
        max_area = self.max_area.value()
        return FilterSettings(
            min_area=int(self.min_area.value()),
            max_area_fraction=None if max_area >= 100 else max_area / 100,
            min_score=self.min_score.value() or None,
            min_stability=self.min_stability.value() or None,
            max_contained=self.contained.value() if self.parts_check.isChecked() else None,
        )

    def ranges(self) -> dict[str, tuple]:
        """The feature filters, ``{column: (min, max)}`` (None: an open end)."""
        return self.features.ranges()

    def set_ranges(self, **ranges) -> None:
        """Replace the feature filters by ``column=(min, max)`` ranges; one ``changed``."""
        rows = self.features
        unknown = sorted(set(ranges) - set(rows.columns))
        if unknown:
            raise ValueError(f"No feature {unknown} to filter on; known: {', '.join(rows.columns)}.")
        rows.blockSignals(True)  # one `changed` for the whole update
        try:
            rows.clear()
            for column, (low, high) in ranges.items():
                rows.add(column, low, high)
        finally:
            rows.blockSignals(False)
        if ranges:
            self.features_section.set_expanded(True)
        self.changed.emit()

    def set_columns(self, columns) -> None:
        """The feature columns of the latest run (rows on a column gone are removed)."""
        self.features.set_columns([c for c in columns if c not in ("label", "plane")])

    def set_settings(self, **values) -> None:
        """Set filters by FilterSettings field name (None switches one off)."""
        current = self.settings().as_dict()
        unknown = sorted(set(values) - set(current))
        if unknown:
            raise ValueError(f"Unknown filters {unknown}; known: {sorted(current)}.")
        s = FilterSettings(**{**current, **values})
        self.blockSignals(True)  # one `changed` for the whole update
        if int(s.min_area) > self.min_area.maximum():  # scripts may go beyond the slider's range
            self.min_area.setMaximum(int(s.min_area))
        self.min_area.setValue(int(s.min_area))
        self.max_area.setValue(100 if s.max_area_fraction is None else int(round(100 * s.max_area_fraction)))
        self.min_score.setValue(s.min_score or 0.0)
        self.min_stability.setValue(s.min_stability or 0.0)
        self.parts_check.setChecked(s.max_contained is not None)
        if s.max_contained is not None:
            self.contained.setValue(s.max_contained)
        self.blockSignals(False)
        self.changed.emit()


def _slider(kind, low, high, value):
    slider = kind(Qt.Orientation.Horizontal)
    slider.setRange(low, high)
    if kind is QLabeledDoubleSlider:
        slider.setSingleStep(0.01)
        slider.setDecimals(2)
    slider.setValue(value)
    return slider

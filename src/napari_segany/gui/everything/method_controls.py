"""What an everything-mode run is set up with: the method, the model (its panel lists the
models the method can run), MobileSAMv2's detector file (shown for object-aware prompts
only) and the method's parameters.

The Segment Everything dock and the 3D Objects dock (``gui/workflows``) both show these
controls and read the same choice from them: one set-up here, so the two docks cannot drift
apart (which controls a method shows, which model a run loads).  Each dock lays the rows
out in its own form (:meth:`MethodControls.add_rows`) and places ``params`` itself (folded
away in the Segment Everything dock).
"""
from __future__ import annotations

from qtpy.QtWidgets import QComboBox, QFormLayout, QLabel

from .jobs import ModelChoice, detector_choice
from .model import DetectorRow, EverythingModelPanel
from .params import METHOD_TITLES, MethodParams


class MethodControls:
    """Method combo, model panel, detector row (with its label) and parameter forms."""

    def __init__(self):
        self.method_combo = QComboBox()
        self.method_combo.addItems(list(METHOD_TITLES.values()))
        self.model_panel = EverythingModelPanel()
        self.detector_row = DetectorRow(self.model_panel.file_checks)
        self.detector_label = QLabel("Detector")
        self.params = MethodParams()
        self.method_combo.currentIndexChanged.connect(self._on_method)
        self._on_method()

    def add_rows(self, form: QFormLayout) -> None:
        """The Method, model and detector rows (not the parameters)."""
        form.addRow("Method", self.method_combo)
        form.addRow(self.model_panel)
        form.addRow(self.detector_label, self.detector_row)

    @property
    def method(self) -> str:
        return list(METHOD_TITLES)[self.method_combo.currentIndex()]

    def set_method(self, method: str, detector=None) -> None:
        """"grid", "object_aware" (``detector``: ObjectAwareModel.pt, else the cache) or
        "fastsam"; ValueError for another name."""
        if method not in METHOD_TITLES:
            raise ValueError(f"Unknown method {method!r}: choose one of {', '.join(METHOD_TITLES)}.")
        self.method_combo.setCurrentIndex(list(METHOD_TITLES).index(method))
        if detector is not None:
            self.detector_row.edit.setText(str(detector))

    def model_choice(self) -> ModelChoice:
        """The model the panel names, on its device and in its precision."""
        p = self.model_panel
        return ModelChoice(p.model_combo.currentText(), p.checkpoint, p.device_combo.currentText(),
                           p.precision)

    def detector_choice(self, model: ModelChoice) -> ModelChoice:
        """The detector of the row (empty: the cache), on the model's device and precision."""
        return detector_choice(self.detector_row.path, model.device, model.precision)

    def _on_method(self, *_) -> None:
        method = self.method
        self.params.show_method(method)
        self.model_panel.set_method(method)
        for w in (self.detector_row, self.detector_label):
            w.setVisible(method == "object_aware")

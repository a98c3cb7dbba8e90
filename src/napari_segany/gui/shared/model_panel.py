"""The model picker: registry model, its license, whether its weights are present, a Load
button, and (folded away) a weights file, the device and the encoder's precision
(:mod:`.precision_choice`, remembered across sessions).  A weights file is checked as soon
as it is chosen (:mod:`.file_field`): a wrong one is named under the field at once.
"""
from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox, QFormLayout, QGridLayout, QHBoxLayout, QLabel, QPushButton, QWidget,
)

from ...engine.weights import cached_path, weights_present
from ...models import registry
from .collapsible import Collapsible
from .file_check import FileChecks
from .file_field import CheckedFileField
from .precision_choice import PrecisionCombo
from .qt_helpers import wrapped_label

ADVANCED_TITLE = "Weights file, device, precision"


INTERACTIVE_TASKS = (registry.PROMPTABLE, registry.INSTANCE)  # FastSAM: prompts select masks


def promptable_models() -> list[str]:
    """Models the interactive widget can drive (SAM family, and FastSAM, whose prompts select
    among its masks). Read at call time, so a model registered later (or by a test) shows up."""
    return [name for name, spec in registry.REGISTRY.items() if spec.task in INTERACTIVE_TASKS]


def available_devices() -> list[str]:
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.insert(0, "cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.insert(0, "mps")
    return devices


def weights_status(name: str, checkpoint: str = "") -> str:
    spec = registry.get_spec(name)
    if checkpoint:
        return "weights: the chosen file"
    if weights_present(spec):
        return "weights: present in the cache"
    if spec.urls:
        return "weights: not downloaded yet (fetched at Load)"
    return f"weights: missing, no download URL: choose the file ({ADVANCED_TITLE})"


def interactive_where(spec) -> str:
    """Where the Segment Anything dock's user picks the model a wrong file belongs to."""
    if spec.task == registry.DETECTOR:
        return ("pick it in the Segment Everything dock, under Method: Object-aware prompts, "
                "Detector")
    return f"pick {spec.name} under Model"


class ModelPanel(QWidget):
    """Emits ``load_requested(name, checkpoint or '', device, precision)`` when Load is
    pressed (precision: "auto", "fp32" or "bf16", as ``load_model`` takes it).

    ``where(spec)``: where the dock offers the model a wrong weights file belongs to."""

    load_requested = Signal(str, str, str, str)

    def __init__(self, parent=None, where=interactive_where):
        super().__init__(parent)
        self.file_checks = FileChecks(where, self)
        self.model_combo = QComboBox()
        self.model_combo.addItems(promptable_models())
        if "mobile_sam" in promptable_models():
            self.model_combo.setCurrentText("mobile_sam")  # the fast default on a laptop CPU
        self.info = wrapped_label()
        self.weights_file = CheckedFileField(
            self.file_checks, self.model_combo.currentText, self, dialog=(
                "Checkpoint file", "Checkpoints (*.pt *.pth *.zip);;All files (*)"))
        field = self.weights_file
        self.checkpoint_edit, self.browse_button = field.edit, field.browse_button
        self.file_label = field.label  # what is wrong with the chosen weights file
        self.checkpoint_edit.setPlaceholderText("weights file (empty: cache / download)")
        self.device_combo = QComboBox()
        self.device_combo.addItems(available_devices())
        self.precision_combo = PrecisionCombo()
        self.precision_combo.show_device(self.device_combo.currentText())
        self.load_button = QPushButton("Load model")
        self.weights_section = Collapsible(ADVANCED_TITLE, self._weights_box())
        self._lay_out()
        self.model_combo.currentTextChanged.connect(self.update_info)
        self.model_combo.currentTextChanged.connect(field.choice_changed)
        self.checkpoint_edit.textChanged.connect(self.update_info)
        self.device_combo.currentTextChanged.connect(self.precision_combo.show_device)
        self.load_button.clicked.connect(self._emit_load)
        self.update_info()

    def _weights_box(self) -> QWidget:
        box = QWidget()
        form = QFormLayout(box)
        form.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.checkpoint_edit)
        row.addWidget(self.browse_button)
        form.addRow("File", row)
        form.addRow("Device", self.device_combo)
        form.addRow("Precision", self.precision_combo)
        return box

    def _lay_out(self) -> None:
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Model"), 0, 0)
        layout.addWidget(self.model_combo, 0, 1)
        layout.addWidget(self.load_button, 0, 2)
        layout.addWidget(self.info, 1, 0, 1, 3)
        layout.addWidget(self.weights_section, 2, 0, 1, 3)
        layout.addWidget(self.file_label, 3, 0, 1, 3)
        layout.setColumnStretch(1, 1)

    def refresh_models(self) -> None:
        current = self.model_combo.currentText()
        self.model_combo.clear()
        self.model_combo.addItems(promptable_models())
        if current:
            self.model_combo.setCurrentText(current)

    def update_info(self, *_) -> None:
        name = self.model_combo.currentText()
        if not name:
            self.info.setText("No promptable model is registered.")
            return
        spec = registry.get_spec(name)
        self.info.setText(f"{spec.title}. License: {spec.license}; "
                          f"{weights_status(name, self.checkpoint)}")
        self.info.setToolTip(f"{spec.description}\nWeights cache: {cached_path(spec).parent}")

    @property
    def checkpoint(self) -> str:
        return self.weights_file.path

    @property
    def precision(self) -> str:
        """The chosen encoder precision: "auto", "fp32" or "bf16"."""
        return self.precision_combo.precision

    def select(self, name: str, checkpoint: str | None = None, device: str | None = None,
               precision: str | None = None) -> None:
        if self.model_combo.findText(name) < 0:
            self.refresh_models()
        if self.model_combo.findText(name) < 0:
            raise ValueError(f"{name!r} is not a promptable model of the registry: "
                             f"{', '.join(promptable_models())}.")
        self.model_combo.setCurrentText(name)
        self.checkpoint_edit.setText(str(checkpoint or ""))
        if device:
            if self.device_combo.findText(str(device)) < 0:
                self.device_combo.addItem(str(device))
            self.device_combo.setCurrentText(str(device))
        if precision:
            self.precision_combo.set_precision(precision)

    def set_busy(self, busy: bool) -> None:
        self.load_button.setEnabled(not busy)
        self.load_button.setText("Loading…" if busy else "Load model")

    def _emit_load(self) -> None:
        self.load_requested.emit(self.model_combo.currentText(), self.checkpoint,
                                 self.device_combo.currentText(), self.precision)

"""The model picker: registry model, its license, whether its weights are present, a Load
button, and (folded away) a weights file, the device and the encoder's precision
(:mod:`.precision_choice`, remembered across sessions).  A weights file is checked as soon
as it is chosen (:mod:`.file_check`): a wrong one is named under the field at once.
"""
from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox, QFileDialog, QFormLayout, QGridLayout, QHBoxLayout, QLabel, QLineEdit,
    QPushButton, QWidget,
)

from ...engine.weights import cached_path, weights_present
from ...models import registry
from .collapsible import Collapsible
from .file_check import FileChecks
from .precision_choice import PrecisionCombo
from .qt_helpers import single_shot_timer, wrapped_label

CHECK_DEBOUNCE_MS = 300  # a path being typed is checked once it rests
ADVANCED_TITLE = "Weights file, device, precision"
REFUSED_STYLE = "color: #ff6b6b;"


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


def refused_file_label() -> QLabel:
    """Where a chosen weights file's refusal is said, under its field (hidden until then)."""
    label = wrapped_label()
    label.setStyleSheet(REFUSED_STYLE)
    label.setVisible(False)
    return label


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
        self.file_label = refused_file_label()
        self.checkpoint_edit = QLineEdit()
        self.checkpoint_edit.setPlaceholderText("weights file (empty: cache / download)")
        self.browse_button = QPushButton("Browse…")
        self.device_combo = QComboBox()
        self.device_combo.addItems(available_devices())
        self.precision_combo = PrecisionCombo()
        self.precision_combo.show_device(self.device_combo.currentText())
        self.load_button = QPushButton("Load model")
        self.weights_section = Collapsible(ADVANCED_TITLE, self._weights_box())
        self._lay_out()
        self._check_timer = single_shot_timer(self, CHECK_DEBOUNCE_MS, self.check_file)
        self.model_combo.currentTextChanged.connect(self._choice_changed)
        self.checkpoint_edit.textChanged.connect(self._choice_changed)
        self.device_combo.currentTextChanged.connect(self.precision_combo.show_device)
        self.browse_button.clicked.connect(self._browse)
        self.load_button.clicked.connect(self._emit_load)
        self.file_checks.checked.connect(self._show_verdict)
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
        return self.checkpoint_edit.text().strip()

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

    def check_file(self) -> None:
        """Check the chosen weights file now (in a worker) for the chosen model."""
        self._check_timer.stop()
        self.file_checks.check_soon(self.model_combo.currentText(), self.checkpoint)

    def _choice_changed(self, *_) -> None:
        self.update_info()
        self.file_label.setVisible(False)
        if self.checkpoint:
            self._check_timer.start()

    def _show_verdict(self, verdict) -> None:
        """A refused file is named under the field (if it is still the chosen one)."""
        same_file = Path(verdict.path) == Path(self.checkpoint).expanduser()
        if verdict.model != self.model_combo.currentText() or not same_file:
            return
        self.file_label.setText(verdict.problem)
        self.file_label.setVisible(verdict.refused)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Checkpoint file", "", "Checkpoints (*.pt *.pth *.zip);;All files (*)")
        if path:
            self.checkpoint_edit.setText(path)
            self.check_file()

    def _emit_load(self) -> None:
        self.load_requested.emit(self.model_combo.currentText(), self.checkpoint,
                                 self.device_combo.currentText(), self.precision)

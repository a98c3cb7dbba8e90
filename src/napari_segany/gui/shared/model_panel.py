"""The model picker: registry model, its license, whether its weights are present, a
checkpoint file, the device, and a Load button."""
from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox, QFileDialog, QGridLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget,
)

from ...engine.weights import cached_path, weights_present
from ...models import registry


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
        return f"weights: {checkpoint}"
    if weights_present(spec):
        return "weights: present in the cache"
    if spec.urls:
        return f"weights: not downloaded yet (will be fetched to {cached_path(spec).parent})"
    return "weights: missing, no download URL: choose the file below"


class ModelPanel(QWidget):
    """Emits ``load_requested(name, checkpoint or '', device)`` when Load is pressed."""

    load_requested = Signal(str, str, str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model_combo = QComboBox()
        self.model_combo.addItems(promptable_models())
        if "mobile_sam" in promptable_models():
            self.model_combo.setCurrentText("mobile_sam")  # the fast default on a laptop CPU
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.checkpoint_edit = QLineEdit()
        self.checkpoint_edit.setPlaceholderText("checkpoint file (empty: cache / download)")
        self.browse_button = QPushButton("Browse…")
        self.device_combo = QComboBox()
        self.device_combo.addItems(available_devices())
        self.load_button = QPushButton("Load model")

        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Model"), 0, 0)
        layout.addWidget(self.model_combo, 0, 1)
        layout.addWidget(self.info, 1, 0, 1, 2)
        row = QHBoxLayout()
        row.addWidget(self.checkpoint_edit)
        row.addWidget(self.browse_button)
        layout.addWidget(QLabel("Checkpoint"), 2, 0)
        layout.addLayout(row, 2, 1)
        layout.addWidget(QLabel("Device"), 3, 0)
        layout.addWidget(self.device_combo, 3, 1)
        layout.addWidget(self.load_button, 4, 0, 1, 2)

        self.model_combo.currentTextChanged.connect(self.update_info)
        self.checkpoint_edit.textChanged.connect(self.update_info)
        self.browse_button.clicked.connect(self._browse)
        self.load_button.clicked.connect(self._emit_load)
        self.update_info()

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
        text = f"{spec.description}\nLicense: {spec.license}; {weights_status(name, self.checkpoint)}"
        self.info.setText(text)

    @property
    def checkpoint(self) -> str:
        return self.checkpoint_edit.text().strip()

    def select(self, name: str, checkpoint: str | None = None, device: str | None = None) -> None:
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

    def set_busy(self, busy: bool) -> None:
        self.load_button.setEnabled(not busy)
        self.load_button.setText("Loading…" if busy else "Load model")

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Checkpoint file", "", "Checkpoints (*.pt *.pth *.zip);;All files (*)")
        if path:
            self.checkpoint_edit.setText(path)

    def _emit_load(self) -> None:
        self.load_requested.emit(self.model_combo.currentText(), self.checkpoint,
                                 self.device_combo.currentText())

"""Model and detector pickers of the everything widget.

``EverythingModelPanel`` is the interactive widget's :class:`ModelPanel` listing the models
the chosen method can run (the engine's method map, ``engine.everything.methods``).
``DetectorRow`` picks the MobileSAMv2 detector file (empty = the cache).
:func:`choice_problem` says what makes a run impossible before any thread starts.
"""
from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QHBoxLayout, QVBoxLayout, QWidget

from ...engine.everything.methods import DEFAULT_MODEL, DETECTOR_NAME, METHOD_TASK, models_for
from ...engine.weights import cached_path, weights_present
from ...models import registry
from ..shared.file_field import CheckedFileField
from ..shared.model_panel import ModelPanel
from .params import METHOD_TITLES


def everything_where(spec) -> str:
    """Where the Segment Everything dock's user picks the model a wrong file belongs to."""
    if spec.task == registry.DETECTOR:
        return f"pick it under Method: {METHOD_TITLES['object_aware']}, Detector"
    if spec.task == registry.INSTANCE:
        return f"pick it under Method: {METHOD_TITLES['fastsam']}, model {spec.name}"
    return f"pick {spec.name} under Model (methods SAM grid and object-aware prompts)"


class EverythingModelPanel(ModelPanel):
    """ModelPanel whose list follows the method (see :meth:`set_method`)."""

    def __init__(self, parent=None):
        self.method = "grid"
        super().__init__(parent, where=everything_where)

    def set_method(self, method: str) -> None:
        if method == self.method:
            return
        old_task = METHOD_TASK[self.method]
        self.method = method
        if old_task != METHOD_TASK[method]:
            self.model_combo.clear()  # another family: propose its default
            self.refresh_models()
            if DEFAULT_MODEL[method] in models_for(method):
                self.model_combo.setCurrentText(DEFAULT_MODEL[method])
            self.checkpoint_edit.clear()

    def refresh_models(self) -> None:
        current = self.model_combo.currentText()
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        self.model_combo.addItems(models_for(self.method))
        if current and current in models_for(self.method):
            self.model_combo.setCurrentText(current)
        self.model_combo.blockSignals(False)
        self.update_info()


class DetectorRow(QWidget):
    """A file field for ObjectAwareModel.pt with a Browse button; a chosen file is checked at
    once (``file_checks``, the dock's), a wrong one named under the field."""

    def __init__(self, file_checks, parent=None):
        super().__init__(parent)
        self.field = CheckedFileField(file_checks, lambda: DETECTOR_NAME, self, dialog=(
            "MobileSAMv2 detector (ObjectAwareModel.pt)", "Checkpoints (*.pt *.pth);;All files (*)"))
        self.edit, self.browse, self.file_label = (
            self.field.edit, self.field.browse_button, self.field.label)
        self.edit.setToolTip(registry.get_spec(DETECTOR_NAME).download_hint)
        row = QHBoxLayout()
        row.addWidget(self.edit)
        row.addWidget(self.browse)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(row)
        column.addWidget(self.file_label)
        self.update_placeholder()

    @property
    def path(self) -> str:
        return self.field.path

    def update_placeholder(self) -> None:
        cached = weights_present(DETECTOR_NAME)
        self.edit.setPlaceholderText("empty: ObjectAwareModel.pt from the cache" if cached else
                                     "ObjectAwareModel.pt (not in the cache: choose the file)")


def choice_problem(request, have_detector: bool) -> str:
    """What makes ``request`` (an everything_jobs.Request) impossible before any work: no
    model, a missing file, tile and halo leaving no core; '' when it can start.
    ``have_detector``: a detector is loaded already."""
    method, choice = request.method, request.model_choice
    if not choice.name:
        return f"No model can run {METHOD_TITLES[method]}: none is registered."
    if choice.checkpoint and not Path(choice.checkpoint).expanduser().is_file():
        return f"Checkpoint file not found: {choice.checkpoint}. Choose the file again (Browse…)."
    try:
        request.tiling.check(registry.get_spec(choice.name).encoder_size)
    except ValueError as exc:
        return f"Large images: {exc}"
    if method != "object_aware":
        return ""
    path = request.detector_choice.checkpoint
    if path and not Path(path).expanduser().is_file():
        return f"Detector file not found: {path}. Choose ObjectAwareModel.pt again (Browse…)."
    if not path and not have_detector and not weights_present(DETECTOR_NAME):
        return (f"{METHOD_TITLES[method]} needs MobileSAMv2's detector ObjectAwareModel.pt, "
                f"which is not in the cache ({cached_path(DETECTOR_NAME).parent}). "
                f"{registry.get_spec(DETECTOR_NAME).download_hint}, then choose it in the "
                "Detector field (Browse…).")
    return ""

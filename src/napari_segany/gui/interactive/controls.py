"""The controls of the Segment Anything widget and their layout (no behaviour here)."""
from __future__ import annotations

from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
    QProgressBar, QPushButton, QVBoxLayout,
)

from .model_panel import ModelPanel


def image_controls(w) -> tuple[QGroupBox, QFormLayout]:
    """The "Data" box both widgets share: ``w.image_combo``, ``w.channel_check`` and
    ``w.channels_edit``; returns the box and its form, for the rows each widget adds."""
    w.image_combo = QComboBox()
    w.channel_check = QCheckBox("first axis is channels")
    w.channels_edit = QLineEdit("0,1,2")
    w.channels_edit.setToolTip("Up to 3 channels, shown to the model as R, G, B")
    box = QGroupBox("Data")
    form = QFormLayout(box)
    form.addRow("Image", w.image_combo)
    channels_row = QHBoxLayout()
    channels_row.addWidget(w.channel_check)
    channels_row.addWidget(w.channels_edit)
    form.addRow("", channels_row)
    return box, form


def build_controls(w) -> None:
    """Create the widget's controls as attributes of ``w`` and lay them out."""
    data_box, form = image_controls(w)
    w.labels_combo = QComboBox()
    w.model_panel = ModelPanel()
    w.split_check = QCheckBox("One object per positive point")
    w.preserve_check = QCheckBox("Preserve existing labels")
    w.preserve_check.setChecked(True)
    w.prefetch_check = QCheckBox("Prefetch neighbouring slices")
    w.refine_check = QCheckBox("Refine with the previous mask")
    w.refine_check.setChecked(True)
    w.refine_check.setToolTip("Added prompts refine the mask shown (its logits are the model's "
                              "mask prompt), as in SAM's iterative refinement.")
    w.sign_label = QLabel()
    w.status_label = QLabel("Load a model, then click on an object.")
    w.status_label.setWordWrap(True)
    w.progress = QProgressBar()
    w.progress.setRange(0, 100)
    w.cancel_button = QPushButton("Cancel")
    w.embed_button = QPushButton("Compute embedding")
    w.candidate_button = QPushButton("Next candidate (N)")
    w.commit_button = QPushButton("Commit (C)")
    w.discard_button = QPushButton("Discard (Shift+C)")

    form.addRow("Labels", w.labels_combo)
    model_box = QGroupBox("Model")
    QVBoxLayout(model_box).addWidget(w.model_panel)
    prompt_box = QGroupBox("Prompts")
    prompt_layout = QVBoxLayout(prompt_box)
    for control in (w.sign_label, w.split_check, w.refine_check, w.preserve_check,
                    w.prefetch_check):
        prompt_layout.addWidget(control)
    progress_row = QHBoxLayout()
    progress_row.addWidget(w.progress)
    progress_row.addWidget(w.cancel_button)
    buttons = QHBoxLayout()
    for control in (w.candidate_button, w.commit_button, w.discard_button):
        buttons.addWidget(control)

    layout = QVBoxLayout(w)
    for control in (data_box, model_box, prompt_box):
        layout.addWidget(control)
    layout.addWidget(w.embed_button)
    layout.addLayout(progress_row)
    layout.addLayout(buttons)
    layout.addWidget(w.status_label)
    layout.addStretch(1)

"""The controls of the Segment Anything dock and their layout (no behaviour here)."""
from __future__ import annotations

from qtpy.QtWidgets import QCheckBox, QComboBox, QGroupBox, QLabel, QPushButton, QVBoxLayout, QWidget

from ..shared.collapsible import Collapsible, scrolling_body
from ..shared.image_controls import image_controls
from ..shared.job_progress import JobProgress
from ..shared.labels_io import preserve_labels_check
from ..shared.model_panel import ModelPanel
from ..shared.qt_helpers import hbox, wrapped_label
from .keybindings import shortcuts_help


def build_controls(w) -> None:
    """Create the dock's controls as attributes of ``w`` and lay them out."""
    data_box, form = image_controls(w)
    w.labels_combo = QComboBox()
    w.model_panel = ModelPanel()
    w.split_check = QCheckBox("One object per positive point")
    w.preserve_check = preserve_labels_check()
    w.prefetch_check = QCheckBox("Prefetch neighbouring slices")
    w.refine_check = QCheckBox("Refine with the previous mask")
    w.refine_check.setChecked(True)
    w.refine_check.setToolTip("Added prompts refine the mask shown (its logits are the model's "
                              "mask prompt), as in SAM's iterative refinement.")
    w.sign_label = QLabel()
    w.status_label = wrapped_label("Load a model, then click on an object.")
    w.job_progress = JobProgress()  # the model load and the embedding
    w.progress, w.cancel_button = w.job_progress.bar, w.job_progress.cancel_button
    w.embed_button = QPushButton("Compute embedding")
    w.candidate_button = QPushButton("Next candidate (N)")
    w.commit_button = QPushButton("Commit (C)")
    w.discard_button = QPushButton("Discard (Shift+C)")
    w.shortcuts_label = wrapped_label(shortcuts_help())
    w.shortcuts_section = Collapsible("Keyboard and mouse", w.shortcuts_label)
    for button, tip in ((w.candidate_button, "Show the next mask candidate (key N)"),
                        (w.commit_button, "Commit the preview into the Labels layer (key C)"),
                        (w.discard_button, "Discard the current objects (Shift+C)")):
        button.setToolTip(tip)

    form.addRow("Labels", w.labels_combo)
    layout = scrolling_body(w)  # collapsed sections keep it on a laptop screen
    for box in (data_box, _boxed("Model", w.model_panel), _prompt_box(w)):
        layout.addWidget(box)
    layout.addLayout(w.job_progress.row(w.embed_button))
    layout.addLayout(hbox(w.candidate_button, w.commit_button, w.discard_button))
    layout.addWidget(w.shortcuts_section)
    layout.addWidget(w.status_label)
    layout.addStretch(1)


def add_panels(w, propagation, store_panel) -> None:
    """The propagation panel in its box, the store panel folded away, above the status line."""
    layout = w.body.layout()
    w.store_section = Collapsible("Embeddings on disk and tiling", store_panel)
    for section in (_boxed("Propagate through z / t", propagation), w.store_section):
        layout.insertWidget(layout.indexOf(w.status_label), section)


def _prompt_box(w) -> QGroupBox:
    box = QGroupBox("Prompts")
    column = QVBoxLayout(box)
    column.addWidget(w.sign_label)
    options = QWidget()
    option_column = QVBoxLayout(options)
    option_column.setContentsMargins(0, 0, 0, 0)
    for control in (w.split_check, w.refine_check, w.preserve_check, w.prefetch_check):
        option_column.addWidget(control)
    w.options_section = Collapsible("Options", options)
    column.addWidget(w.options_section)
    return box


def _boxed(title: str, content) -> QGroupBox:
    box = QGroupBox(title)
    QVBoxLayout(box).addWidget(content)
    return box

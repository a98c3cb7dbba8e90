"""The "Data" box both docks start with: which image layer, and whether its first axis
holds channels (and which of them the model sees as R, G, B)."""
from __future__ import annotations

from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLineEdit


def image_controls(w) -> tuple[QGroupBox, QFormLayout]:
    """``w.image_combo``, ``w.channel_check`` and ``w.channels_edit`` in a "Data" box;
    returns the box and its form, for the rows each dock adds."""
    w.image_combo = QComboBox()
    w.image_combo.setToolTip("The image layer segmented; its prompt, preview and Labels "
                             "layers are kept directly above it.")
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


def channels_of(text: str) -> tuple[int, ...]:
    """The channel indices typed in the channels field ("0, 2" -> (0, 2)); ValueError."""
    return tuple(int(c) for c in text.replace(" ", "").split(",") if c)

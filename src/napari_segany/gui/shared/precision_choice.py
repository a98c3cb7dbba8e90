"""The encoder precision of the model panel: auto / fp32 / bf16, remembered across sessions.

The choice is kept in ``QSettings("napari-segany", "napari-segany")`` (key
``model/precision``; on Linux ``~/.config/napari-segany/napari-segany.conf``).  A panel
starts with ``$NAPARI_SEGANY_PRECISION`` when it is set (a session's explicit request, e.g.
fp32 for reproducible runs), else the remembered choice, else "auto".  The "auto" item says
what it resolves to for the chosen device (``engine.precision.resolve_precision``).
"""
from __future__ import annotations

import os

from qtpy.QtCore import QSettings
from qtpy.QtWidgets import QComboBox

from ...engine.precision import PRECISION_ENV, REQUESTS, default_precision, resolve_precision
from ...models.precision import precision_of
from . import notify

SETTINGS_SCOPE = ("napari-segany", "napari-segany")  # organisation, application
SETTINGS_KEY = "model/precision"
CHOICES = ("auto", "fp32", "bf16")  # the order of the items
TOOLTIP = ("Precision of the image encoder (decoders always run in fp32).\n"
           "fp32: exact.  bf16 (bfloat16): much faster on CPUs with AMX-BF16, slower on CPUs\n"
           "without native bf16; masks nearly identical (see docs/benchmarks.md).\n"
           "auto: bf16 only where the hardware runs it fast (AMX-BF16 CPUs, bf16 CUDA GPUs).\n"
           "Embeddings of the two precisions are cached apart.  Takes effect at the next load.")


def remembered_precision() -> str | None:
    value = QSettings(*SETTINGS_SCOPE).value(SETTINGS_KEY, "", type=str)
    return value if value in REQUESTS else None


def remember_precision(value: str) -> None:
    QSettings(*SETTINGS_SCOPE).setValue(SETTINGS_KEY, value)


def initial_precision() -> str:
    """$NAPARI_SEGANY_PRECISION if set (a wrong value is said once and ignored), else the
    remembered choice, else "auto"."""
    if os.environ.get(PRECISION_ENV, "").strip():
        try:
            return default_precision()
        except ValueError as exc:
            notify.warning(f"{exc} Using the remembered precision instead.")
    return remembered_precision() or "auto"


def precision_note(model) -> str:
    """" (bf16 encoder)" for a model loaded in bfloat16, else "" (for status lines)."""
    return " (bf16 encoder)" if precision_of(model) == "bf16" else ""


def auto_text(device: str) -> str:
    return f"auto (bf16 where fast: {resolve_precision('auto', device or None)} here)"


class PrecisionCombo(QComboBox):
    """The three choices; ``precision`` is the chosen one ("auto", "fp32" or "bf16").  A
    choice the user makes is remembered for the next session."""

    def __init__(self, parent=None):
        super().__init__(parent)
        for value in CHOICES:
            self.addItem(value, value)
        self.setToolTip(TOOLTIP)
        self.show_device("cpu")
        self.set_precision(initial_precision())
        self.activated.connect(lambda _: remember_precision(self.precision))  # the user's choice

    @property
    def precision(self) -> str:
        return self.currentData()

    def set_precision(self, value: str) -> None:
        """Choose ``value`` (not remembered: scripts and tests call this)."""
        index = self.findData(value)
        if index < 0:
            raise ValueError(f"precision must be one of {', '.join(CHOICES)}; got {value!r}.")
        self.setCurrentIndex(index)

    def show_device(self, device: str) -> None:
        """Say what "auto" resolves to on ``device`` ("cpu", "cuda", "mps")."""
        try:
            text = auto_text(device)
        except RuntimeError:  # a device string torch does not know: no claim
            text = "auto (bf16 where fast)"
        self.setItemText(0, text)

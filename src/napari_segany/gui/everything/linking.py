"""Everything mode on every slice of a 3D stack, linked into 3D objects: the dock's controls.

The Run row's scope offers a third choice for (Z, Y, X) images, "3D objects (linked)", with
the link IoU beside it.  The dock then runs its usual job on every slice and links the
results in the worker (``engine.workflows.volume.iter_link_results``): every mask keeps its
record and gets a 3D id, so the live filters still select masks, and the result layer and a
commit show the kept masks with one id per 3D object.  The link IoU control is the 3D
Objects dock's too (:func:`link_iou_spin`).
"""
from __future__ import annotations

from qtpy.QtWidgets import QComboBox, QDoubleSpinBox

SCOPES = ("Shown slice", "All slices", "3D objects (linked)")
SHOWN, ALL, LINKED = range(3)
DEFAULT_LINK_IOU = 0.5


def link_iou_spin() -> QDoubleSpinBox:
    """The minimum IoU of two masks on neighbouring slices that are one object."""
    spin = QDoubleSpinBox()
    spin.setRange(0.05, 1.0)
    spin.setSingleStep(0.05)
    spin.setValue(DEFAULT_LINK_IOU)
    spin.setToolTip("Masks on neighbouring slices overlapping at least this much (IoU) are "
                    "one object; 0.3 for slices far apart.")
    return spin


class LinkScope:
    """The scope combo's linked choice (offered for 3D images only) and its IoU spin box
    (shown with that choice)."""

    def __init__(self, combo: QComboBox):
        self.combo = combo
        self.iou = link_iou_spin()
        self.iou.setPrefix("IoU ")
        combo.currentIndexChanged.connect(self._on_scope)
        self.offer(False)

    def offer(self, is_3d: bool) -> None:
        """The linked choice is enabled for a (Z, Y, X) image only."""
        self.combo.model().item(LINKED).setEnabled(is_3d)
        if not is_3d and self.combo.currentIndex() == LINKED:
            self.combo.setCurrentIndex(ALL)
        self._on_scope()

    @property
    def offered(self) -> bool:
        return self.combo.model().item(LINKED).isEnabled()

    def wanted(self) -> float | None:
        """The link IoU when the linked scope is chosen, else None."""
        return self.iou.value() if self.combo.currentIndex() == LINKED else None

    def choose(self, enabled: bool, min_iou: float | None = None) -> None:
        if enabled:
            self.combo.setCurrentIndex(LINKED)
        elif self.combo.currentIndex() == LINKED:
            self.combo.setCurrentIndex(ALL)
        if min_iou is not None:
            self.iou.setValue(float(min_iou))

    def _on_scope(self, *_) -> None:
        self.iou.setVisible(self.combo.currentIndex() == LINKED)

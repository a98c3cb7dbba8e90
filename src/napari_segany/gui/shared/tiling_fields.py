"""The tiling fields both widgets show: "Tile above", "Tile size" and "Halo" (automatic at
their minimum), read as the engine's :class:`~..engine.tiling.TilingSettings`, the one rule
for when and how a slice is tiled (also that of ``napari-segany``'s ``--tile`` options)."""
from __future__ import annotations

from qtpy.QtWidgets import QFormLayout, QSpinBox

from ...engine.tiling import TilingSettings


class TilingFields:
    """Three spin boxes (0 / -1: automatic) and the settings they stand for."""

    def __init__(self):
        self.threshold_spin = pixel_spin(0, 1 << 20, 0, "auto (2048, or 2 x model input)",
                                         "Tile slices whose longest side exceeds this (pixels)")
        self.tile_spin = pixel_spin(0, 8192, 0, "auto (model input)", "Tile side (pixels)")
        self.halo_spin = pixel_spin(-1, 4096, -1, "auto (tile / 8)",
                                    "Context around each tile core")

    @property
    def spins(self) -> tuple[QSpinBox, QSpinBox, QSpinBox]:
        return self.threshold_spin, self.tile_spin, self.halo_spin

    def add_rows(self, form: QFormLayout) -> None:
        form.addRow("Tile above", self.threshold_spin)
        form.addRow("Tile size", self.tile_spin)
        form.addRow("Halo", self.halo_spin)

    def settings(self, enabled: bool = True) -> TilingSettings:
        halo = self.halo_spin.value()
        return TilingSettings(self.tile_spin.value() or None, halo if halo >= 0 else None,
                              self.threshold_spin.value() or None, enabled)

    def set_values(self, tile=None, halo=None, threshold=None) -> None:
        """Set the fields (None: automatic)."""
        self.tile_spin.setValue(tile or 0)
        self.halo_spin.setValue(-1 if halo is None else halo)
        self.threshold_spin.setValue(threshold or 0)


def pixel_spin(low: int, high: int, value: int, special: str, tip: str) -> QSpinBox:
    """A spin box in pixels whose minimum shows ``special`` (the automatic value)."""
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setValue(value)
    spin.setSpecialValueText(special)  # shown for the minimum: the automatic value
    spin.setSuffix(" px")
    spin.setToolTip(tip)
    return spin

"""The "Large images" group of the Segment Everything widget: when and how slices are tiled.

The rule and its defaults are those of the interactive widget's store panel and of
``napari-segany embed`` (:class:`~..engine.tiling.settings.TilingSettings`): a slice whose
longest side exceeds the threshold (auto: twice the model input, at least 2048 px) runs tile
by tile, with tiles of the model input and a halo of tile / 8 unless set here.
"""
from __future__ import annotations

from qtpy.QtWidgets import QCheckBox, QFormLayout, QGroupBox

from ..engine.tiling import TilingSettings
from .store_panel import _spin


class TilingPanel(QGroupBox):
    """Tile large slices (on by default), threshold, tile size and halo (0 / -1: auto)."""

    def __init__(self, parent=None):
        super().__init__("Large images", parent)
        self.enable_check = QCheckBox("Tile large slices")
        self.enable_check.setChecked(True)
        self.enable_check.setToolTip("Run everything mode tile by tile on slices larger than "
                                     "the threshold (else they are downscaled to the model input)")
        self.threshold_spin = _spin(0, 1 << 20, 0, "auto (2048, or 2 x model input)",
                                    "Tile slices whose longest side exceeds this (pixels)")
        self.tile_spin = _spin(0, 8192, 0, "auto (model input)", "Tile side (pixels)")
        self.halo_spin = _spin(-1, 4096, -1, "auto (tile / 8)", "Context around each tile core")
        form = QFormLayout(self)
        form.addRow(self.enable_check)
        form.addRow("Tile above", self.threshold_spin)
        form.addRow("Tile size", self.tile_spin)
        form.addRow("Halo", self.halo_spin)
        self.enable_check.toggled.connect(self._enable_spins)

    def settings(self) -> TilingSettings:
        halo = self.halo_spin.value()
        return TilingSettings(self.tile_spin.value() or None, halo if halo >= 0 else None,
                              self.threshold_spin.value() or None, self.enable_check.isChecked())

    def set_settings(self, tile=None, halo=None, threshold=None, enabled: bool = True) -> None:
        """Set the controls (None: automatic)."""
        self.enable_check.setChecked(enabled)
        self.tile_spin.setValue(tile or 0)
        self.halo_spin.setValue(-1 if halo is None else halo)
        self.threshold_spin.setValue(threshold or 0)

    def _enable_spins(self, enabled: bool) -> None:
        for spin in (self.threshold_spin, self.tile_spin, self.halo_spin):
            spin.setEnabled(enabled)

"""The "Large images" group of the Segment Everything widget: when and how slices are tiled.

The rule and its defaults are those of the interactive widget's store panel and of
``napari-segany`` (:class:`~..engine.tiling.TilingSettings`, read by :mod:`.tiling_fields`):
a slice whose longest side exceeds the threshold (auto: twice the model input, at least
2048 px) runs tile by tile, with tiles of the model input and a halo of tile / 8 unless set
here.
"""
from __future__ import annotations

from qtpy.QtWidgets import QCheckBox, QFormLayout, QWidget

from ...engine.tiling import TilingSettings
from ..shared.tiling_fields import TilingFields


class TilingPanel(QWidget):
    """Tile large slices (on by default), threshold, tile size and halo (0 / -1: auto)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.enable_check = QCheckBox("Tile large slices")
        self.enable_check.setChecked(True)
        self.enable_check.setToolTip("Run everything mode tile by tile on slices larger than "
                                     "the threshold (else they are downscaled to the model input)")
        self.fields = TilingFields()
        self.threshold_spin, self.tile_spin, self.halo_spin = self.fields.spins
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow(self.enable_check)
        self.fields.add_rows(form)
        self.enable_check.toggled.connect(self._enable_spins)

    def settings(self) -> TilingSettings:
        return self.fields.settings(self.enable_check.isChecked())

    def set_settings(self, tile=None, halo=None, threshold=None, enabled: bool = True) -> None:
        """Set the controls (None: automatic)."""
        self.enable_check.setChecked(enabled)
        self.fields.set_values(tile, halo, threshold)

    def _enable_spins(self, enabled: bool) -> None:
        for spin in self.fields.spins:
            spin.setEnabled(enabled)

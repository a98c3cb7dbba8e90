"""The Segment Everything dock's public methods for 3D objects and feature filters.

A mixin of :class:`~.widget.EverythingWidget` (documented in docs/everything.md): linking the
slices of a (Z, Y, X) stack into 3D objects (the scope "3D objects (linked)", :mod:`.linking`) and the min / max filters on the measured features of every mask.
"""
from __future__ import annotations

from ...engine.errors import ImageError
from .layers import is_result_layer


class ObjectOptions:
    """For a widget with ``viewer``, ``source``, ``view``, ``filters``, ``link_scope``,
    ``shown_index``, ``_apply_filters`` and ``wait``."""

    def filter_features(self, **ranges) -> None:
        """Feature filters ``column=(min, max)`` (None: an open end), replacing the previous
        ones, e.g. ``circularity=(0.8, None)``; applied at once (in a worker: waits for it)."""
        self.filters.set_ranges(**ranges)
        self._apply_filters()
        self.wait()

    def set_linking(self, enabled: bool = True, min_iou: float | None = None) -> None:
        """Link the slices of a (Z, Y, X) stack into 3D objects at the next run (which then
        covers every slice); ``min_iou``: of two masks on neighbouring slices that are one."""
        if enabled and not self.link_scope.offered:
            raise ImageError("Linking slices needs a (Z, Y, X) image: pick one first.")
        self.link_scope.choose(enabled, min_iou)

    @property
    def features(self) -> dict:
        """Slice index -> the table of every mask of ``results`` (row i: record i)."""
        return self.view.features

    def _show_features(self) -> None:
        """The result layer's features: the shown slice's masks (set again only when the
        slice or the selection changed)."""
        layer = next((l for l in self.viewer.layers if is_result_layer(l)), None)
        if layer is None or self.source is None:
            return
        key = (id(layer), self.shown_index(), self.view.accepted)
        if key != getattr(self, "_features_key", None):
            self._features_key = key
            layer.features = self.view.layer_features(self.shown_index())

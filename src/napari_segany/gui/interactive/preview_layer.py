"""The preview of the Segment Anything dock: a 2D Labels layer showing the objects of the
shown slice, with the image's Y/X scale and translate (its size never depends on the number
of slices).  Each click rewrites only the bounding boxes of the objects that changed.
"""
from __future__ import annotations

import numpy as np
from napari.layers import Labels

from ...engine.interactive import ObjectMask, paint_preview
from ...engine.interactive.masks import union_bbox
from ..shared.image_slice import ImageSource
from .own_layers import OWNER_KEY, PREVIEW_NAME, adopt


class PreviewLayer:
    """A 2D Labels layer showing the current objects; written bounding box by bounding box.

    Edits go through the public ``data_setitem`` (partial redraw of the changed pixels).  It
    records undo history, so the layer is reset (``data = zeros``, which also clears the
    history) whenever the objects are committed or discarded.
    """

    def __init__(self, viewer, name: str = PREVIEW_NAME):
        self.viewer = viewer
        self.name = name
        self.layer: Labels | None = None
        self._shown: dict[tuple, tuple[int, ObjectMask]] = {}  # key -> (value, mask)

    def attach(self, source: ImageSource, taken=()) -> None:
        """Create the preview of ``source`` (or adopt ours by name; ``taken``: layers other
        images use)."""
        shape = source.spatial_shape[-2:]
        scale, translate = source.spatial_scale[-2:], source.spatial_translate[-2:]
        layer = adopt(self.viewer, self.name, Labels, 2, taken)
        if layer is not None and layer.data.shape == shape:
            layer.scale, layer.translate = scale, translate
        else:
            if layer is not None:
                self.viewer.layers.remove(layer)
            layer = self.viewer.add_labels(
                np.zeros(shape, np.uint8), name=self.name, scale=scale, translate=translate,
                opacity=0.55, blending="translucent",
                metadata={OWNER_KEY: source.layer.name})
        self.layer = layer
        self._shown = {}
        self.reset()

    def alive(self) -> bool:
        return self.layer is not None and self.layer in self.viewer.layers

    @property
    def data(self) -> np.ndarray:
        return self.layer.data

    def show(self, masks: list[ObjectMask]) -> None:
        """Make the preview show exactly ``masks``; rewrite only what changed."""
        wanted = {m.key: m for m in masks}
        for key, (value, old) in list(self._shown.items()):
            if key not in wanted:
                self._replace(old, None, value)
                del self._shown[key]
        for key, mask in wanted.items():
            value, old = self._shown.get(key, (None, None))
            if old is mask:
                continue
            value = value or self._free_value()
            self._replace(old, mask, value)
            self._shown[key] = (value, mask)

    def reset(self) -> None:
        """Empty the preview and its undo history (one full redraw)."""
        self._shown = {}
        self.layer.data = np.zeros(self.layer.data.shape, np.uint8)

    def _free_value(self) -> int:
        used = {value for value, _ in self._shown.values()}
        return next(v for v in range(1, 256) if v not in used)

    def _replace(self, old: ObjectMask | None, new: ObjectMask | None, value: int) -> None:
        bbox = union_bbox(old.bbox if old else None, new.bbox if new else None)
        if bbox is None:
            return
        r0, r1, c0, c1 = bbox
        current = self.layer.data[r0:r1, c0:c1]
        target = current.copy()
        paint_preview(target, old, new, value, origin=(r0, c0))
        rows, cols = np.nonzero(target != current)
        if rows.size:
            self.layer.data_setitem((rows + r0, cols + c0), target[rows, cols])

"""The layers the Segment Anything dock makes for each image: what they are called, when an
existing layer is adopted instead of a new one made, and where they sit in the layer list.

Each image layer gets its own Points (clicks), Shapes (boxes) and preview layers.  The first
image uses the plain names ("SegAny points", ...); the others add the image's name
("SegAny points (nuclei)"), so that no image's prompts are read from another's layers.  A
layer of the right name, kind and dimensionality is adopted when no other image of the dock
uses it (e.g. after the dock was closed and opened again).  The image's prompt, preview and
Labels layers are kept directly above the image (``viewer.layers.move``), where they are
drawn over it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..shared.labels_io import OWNER_KEY, PREVIEW_NAME

POINTS_NAME = "SegAny points"
BOXES_NAME = "SegAny boxes"
__all__ = ["BOXES_NAME", "OWNER_KEY", "POINTS_NAME", "PREVIEW_NAME", "LayerNames", "adopt",
           "keep_above"]


@dataclass(frozen=True)
class LayerNames:
    points: str = POINTS_NAME
    boxes: str = BOXES_NAME
    preview: str = PREVIEW_NAME

    @classmethod
    def for_image(cls, image_name: str, plain: bool) -> "LayerNames":
        """The plain names, or names that carry the image's (when the plain ones are taken)."""
        if plain:
            return cls()
        return cls(*(f"{base} ({image_name})" for base in (POINTS_NAME, BOXES_NAME, PREVIEW_NAME)))

    def __iter__(self):
        return iter((self.points, self.boxes, self.preview))


def adopt(viewer, name: str, kind, ndim: int, taken) -> object | None:
    """The layer ``name`` if it is a ``kind`` of ``ndim`` dimensions that no other image uses
    (``taken``: layers other images use); a stale layer of ours by that name (another
    dimensionality) is removed, a layer of the user's is left alone."""
    layer = viewer.layers[name] if name in viewer.layers else None
    if layer is None or any(layer == other for other in taken):  # == : napari's proxies
        return None
    if isinstance(layer, kind) and layer.ndim == ndim:
        return layer
    if OWNER_KEY in layer.metadata:
        viewer.layers.remove(layer)
    return None


def keep_above(viewer, anchor, layers) -> None:
    """Move ``layers`` (bottom to top; None and removed ones skipped) directly above
    ``anchor`` in the layer list, in that order; layers already in place are not moved."""
    below = anchor
    for layer in layers:
        if layer is None or layer not in viewer.layers or below not in viewer.layers:
            continue
        src, ref = viewer.layers.index(layer), viewer.layers.index(below)
        if src != ref + 1:
            viewer.layers.move(src, ref + 1)  # napari counts dest before the move
        below = layer

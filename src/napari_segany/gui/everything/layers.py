"""The everything widget's result layer, and committing a result into the target Labels.

* The result layer ("SegAny everything") has the image's spatial shape; each segmented
  slice holds the painted labels of its filtered result (ids 1..n per slice, smaller masks
  on top).  It is a scratch view: rewritten whole-slice, without undo history, uint16.  It
  is recognised by a mark in its metadata, not by its name: a layer of the user's that
  happens to bear the name is never rewritten or removed.  It is made once and reused,
  emptied to the shape of another image (layer creation and removal are napari's slowest
  main-thread work).
* Committing into the target Labels is :mod:`.commit`'s (prepared in a worker, written
  in steps as one undo step); the rows of what it wrote are added to the target's
  ``features`` (:func:`append_features`).
"""
from __future__ import annotations

import numpy as np
from napari.layers import Labels

from ..shared.image_slice import ImageSource

RESULT_NAME = "SegAny everything"
RESULT_MARK = "napari_segany_everything_result"  # metadata key of the widget's result layer


def is_result_layer(layer) -> bool:
    """True for a result layer the widget made (whatever its name now)."""
    return isinstance(layer, Labels) and bool(layer.metadata.get(RESULT_MARK))


def ensure_result_layer(viewer, source: ImageSource) -> tuple[Labels, bool]:
    """The result layer for ``source``, and True when ours was emptied to another shape
    (what it showed is gone): ours reused as it is when its shape fits, else emptied; a
    user's layer is never touched (ours then gets a numbered name).

    Emptying our layer to another shape (even another number of dimensions) costs napari a
    fraction of removing it and adding a new one: a removal runs a full garbage collection
    (``gc.collect`` in napari's canvas) and a new layer builds its visuals, overlays, layer
    controls and shaders, each hundreds of ms on the main thread."""
    shape = tuple(source.spatial_shape)
    ours = [layer for layer in viewer.layers if is_result_layer(layer)]
    for layer in ours[1:]:  # only one is ever kept up to date
        viewer.layers.remove(layer)
    if not ours:
        return viewer.add_labels(np.zeros(shape, np.uint16), name=RESULT_NAME,
                                 scale=source.spatial_scale, translate=source.spatial_translate,
                                 opacity=0.6, metadata={RESULT_MARK: True}), False
    layer, emptied = ours[0], tuple(ours[0].data.shape) != shape
    if emptied:
        layer.data = np.zeros(shape, np.uint16)
    layer.scale, layer.translate = source.spatial_scale, source.spatial_translate
    return layer, emptied


def write_slice(layer: Labels, index: tuple, labels: np.ndarray) -> None:
    """Copy a painted (H, W) label image into slice ``index`` of the result layer (no refresh).

    The layer is uint16 (ids restart at 1 on every slice: a few hundred objects each), half
    the memory of int32; it widens if a slice ever needs more ids."""
    if np.dtype(labels.dtype).itemsize > np.dtype(layer.data.dtype).itemsize:
        layer.data = layer.data.astype(labels.dtype)
    layer.data[index + (Ellipsis,)] = labels


def append_features(layer: Labels, table: dict) -> None:
    """Add ``table``'s rows (columns with an ``index`` of label ids) to ``layer.features``;
    rows of the same ids there before are replaced."""
    import pandas as pd

    if not table:
        return
    new = pd.DataFrame(table)
    old = layer.features
    if len(old):
        if "index" in old:
            old = old[~old["index"].isin(new["index"])]
        new = pd.concat([old, new], ignore_index=True)
    layer.features = new

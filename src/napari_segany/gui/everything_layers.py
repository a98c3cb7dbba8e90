"""The everything widget's result layer, and committing a result into the target Labels.

* The result layer ("SegAny everything") has the image's spatial shape; each segmented
  slice holds the painted labels of its filtered result (ids 1..n per slice, smaller masks
  on top).  It is a scratch view: rewritten whole-slice, without undo history, uint16.
* A commit copies what the result layer shows into the target Labels (the layer the
  interactive widget writes to, by default) with new ids after the largest in use, in a
  single ``block_history``: one Ctrl+Z undoes the whole commit, all slices included.  With
  ``preserve`` only background pixels are written, so corrections made there survive.
"""
from __future__ import annotations

import numpy as np
from napari.layers import Labels

from .image_slice import ImageSource
from .labels_io import LabelsWriter

RESULT_NAME = "SegAny everything"


def ensure_result_layer(viewer, source: ImageSource) -> Labels:
    """The result layer for ``source`` (reused when its shape fits, else replaced)."""
    shape = source.spatial_shape
    layer = viewer.layers[RESULT_NAME] if RESULT_NAME in viewer.layers else None
    if isinstance(layer, Labels) and layer.data.shape == shape:
        layer.scale, layer.translate = source.spatial_scale, source.spatial_translate
        return layer
    if layer is not None:
        viewer.layers.remove(layer)
    return viewer.add_labels(np.zeros(shape, np.uint16), name=RESULT_NAME,
                             scale=source.spatial_scale, translate=source.spatial_translate,
                             opacity=0.6)


def show_slice(layer: Labels, index: tuple, labels: np.ndarray) -> None:
    """Replace one slice of the result layer with ``labels`` (H, W).

    The layer is uint16 (ids restart at 1 on every slice: a few hundred objects each), half
    the memory of the image-sized target for a stack; it widens if a slice ever needs more.
    """
    if labels.size and labels.max() > np.iinfo(layer.data.dtype).max:
        layer.data = layer.data.astype(np.int32)
    layer.data[index + (Ellipsis,)] = labels
    layer.refresh()


def commit_slices(writer: LabelsWriter, items: list[tuple[tuple, np.ndarray]],
                  preserve: bool = True) -> int:
    """Write painted label images (``(slice index, (H, W) labels)`` pairs) into the writer's
    layer with new ids, as one undo step.  Returns the number of objects written."""
    layer = writer.layer
    next_id = writer.tracker.next_id(layer.data)
    limit = np.iinfo(layer.data.dtype).max if layer.data.dtype.kind in "iu" else None
    written = 0
    with layer.block_history():
        for index, labels in items:
            rows, cols, values = _new_pixels(layer, index, labels, preserve, next_id)
            if rows.size == 0:
                continue
            n_new = int(values.max()) - next_id + 1
            if limit is not None and next_id + n_new - 1 > limit:
                raise ValueError(
                    f"{layer.name!r} stores {layer.data.dtype} ids (at most {limit}); "
                    f"{next_id + n_new - 1} are needed. Convert it (Layer > Convert data type > "
                    "uint32) or commit into a new Labels layer.")
            leading = tuple(np.full(rows.size, i, dtype=np.intp) for i in index)
            layer.data_setitem((*leading, rows, cols), values.astype(layer.data.dtype))
            writer.tracker.observe(next_id + n_new - 1)
            next_id += n_new
            written += n_new
    return written


def _new_pixels(layer, index, labels, preserve, first_id):
    """(rows, cols, new ids) of one slice: objects renumbered first_id, first_id + 1, ... in
    their order in ``labels``; an object wholly hidden by existing labels gets no id."""
    take = labels > 0
    if preserve:
        plane = layer.data[index] if index else layer.data
        take &= np.asarray(plane) == 0
    rows, cols = np.nonzero(take)
    old = labels[rows, cols]
    _, compact = np.unique(old, return_inverse=True)
    return rows, cols, first_id + compact.reshape(-1).astype(np.int64)

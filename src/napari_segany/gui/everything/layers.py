"""The everything widget's result layer, and committing a result into the target Labels.

* The result layer ("SegAny everything") has the image's spatial shape; each segmented
  slice holds the painted labels of its filtered result (ids 1..n per slice, smaller masks
  on top).  It is a scratch view: rewritten whole-slice, without undo history, uint16.  It
  is recognised by a mark in its metadata, not by its name: a layer of the user's that
  happens to bear the name is never rewritten or removed.
* A commit copies what the result layer shows into the target Labels (the layer the
  interactive widget writes to, by default) with new ids after the largest in use, in a
  single ``block_history``: one Ctrl+Z undoes the whole commit, all slices included.  With
  ``preserve`` only background pixels are written, so corrections made there survive.  A
  commit whose ids would not fit the layer's type is refused before anything is written.
"""
from __future__ import annotations

import numpy as np
from napari.layers import Labels

from ...engine.everything.result import EverythingResult
from ..shared.image_slice import ImageSource
from ..shared.labels_io import LabelsWriter

RESULT_NAME = "SegAny everything"
RESULT_MARK = "napari_segany_everything_result"  # metadata key of the widget's result layer


def is_result_layer(layer) -> bool:
    """True for a result layer the widget made (whatever its name now)."""
    return isinstance(layer, Labels) and bool(layer.metadata.get(RESULT_MARK))


def ensure_result_layer(viewer, source: ImageSource) -> Labels:
    """The result layer for ``source``: ours reused when its shape fits, else replaced; a
    user's layer is never touched (ours then gets a numbered name)."""
    shape = source.spatial_shape
    ours = [layer for layer in viewer.layers if is_result_layer(layer)]
    for layer in ours:
        if tuple(layer.data.shape) == tuple(shape):
            layer.scale, layer.translate = source.spatial_scale, source.spatial_translate
            return layer
    for layer in ours:  # another image's shape: a scratch view, replaced
        viewer.layers.remove(layer)
    return viewer.add_labels(np.zeros(shape, np.uint16), name=RESULT_NAME,
                             scale=source.spatial_scale, translate=source.spatial_translate,
                             opacity=0.6, metadata={RESULT_MARK: True})


def show_slice(layer: Labels, index: tuple, result: EverythingResult, ids=None) -> None:
    """Paint ``result`` (an (H, W) EverythingResult) into one slice of the result layer.

    The masks are painted straight into the layer's array: no label image of the slice is
    made or kept besides the layer's own.  The layer is uint16 (ids restart at 1 on every
    slice: a few hundred objects each), half the memory of int32; it widens if a slice ever
    needs more ids.  ``ids``: the id of record k - 1 at ``ids[k]`` (3D objects) instead of k.
    """
    largest = len(result) if ids is None else int(np.max(ids, initial=0))
    if largest > np.iinfo(layer.data.dtype).max:
        layer.data = layer.data.astype(np.int32)
    if isinstance(layer.data, np.ndarray):  # an integer index of an array: a view
        plane = result.paint(out=layer.data[index + (Ellipsis,)])
        if ids is not None:
            plane[...] = ids[plane]
    else:  # not a numpy array (the user replaced the layer's data): paint, then assign
        plane = result.paint(dtype=np.int32)
        layer.data[index + (Ellipsis,)] = plane if ids is None else ids[plane]
    layer.refresh()


def commit_slices(writer: LabelsWriter, items: list[tuple[tuple, np.ndarray]],
                  preserve: bool = True, linked: bool = False, assigned: dict | None = None
                  ) -> int:
    """Write painted label images (``(slice index, (H, W) labels)`` pairs) into the writer's
    layer with new ids, as one undo step.  Returns the number of objects written.

    ``linked``: the labels hold one id per object across slices (3D objects), which gets one
    new id on every slice; otherwise every slice's objects get ids of their own.
    ``assigned``: a dict filled with ``slice index -> (ids in labels, their new ids)`` of the
    objects written (an object wholly hidden by existing labels gets none).

    Raises ValueError, before writing anything, when the new ids do not fit the layer's type
    (a commit is whole or not at all)."""
    layer = writer.layer
    next_id = writer.tracker.next_id(layer.data)
    visible = [_visible_ids(layer, index, labels, preserve) for index, labels in items]
    union = np.unique(np.concatenate([np.zeros(0, np.int64), *visible])) if linked else None
    _check_ids_fit(layer, next_id, union.size if linked else sum(v.size for v in visible))
    written = 0
    with layer.block_history():
        for (index, labels), ids in zip(items, visible):
            if ids.size == 0:
                continue
            known = union if linked else ids  # new id: next_id + position in known
            rows, cols, values = _new_pixels(layer, index, labels, preserve, known, next_id)
            leading = tuple(np.full(rows.size, i, dtype=np.intp) for i in index)
            layer.data_setitem((*leading, rows, cols), values.astype(layer.data.dtype))
            new = next_id + np.searchsorted(known, ids)
            writer.tracker.observe(int(new.max()))
            if assigned is not None:
                assigned[index] = (ids, new)
            if not linked:
                next_id += ids.size
                written += ids.size
    return int(union.size) if linked else written


def _visible_ids(layer, index, labels, preserve) -> np.ndarray:
    """The ids of one slice that would be written (objects not wholly hidden), sorted."""
    take = labels > 0
    if preserve:
        take &= np.asarray(layer.data[index] if index else layer.data) == 0
    return np.unique(labels[take])


def _check_ids_fit(layer, next_id: int, n_new: int) -> None:
    kind = np.dtype(layer.data.dtype)
    if kind.kind not in "iu" or n_new == 0:
        return
    limit, needed = int(np.iinfo(kind).max), next_id + n_new - 1
    if needed > limit:
        raise ValueError(
            f"{layer.name!r} stores {kind} ids (at most {limit}); {needed} are needed. Nothing "
            "was written. Convert it (Layer > Convert data type > uint32) or commit into a new "
            "Labels layer.")


def _new_pixels(layer, index, labels, preserve, known: np.ndarray, first_id: int):
    """(rows, cols, new ids) of one slice: an object's new id is first_id + its position in
    ``known`` (sorted ids); an object wholly hidden by existing labels gets no pixel."""
    take = labels > 0
    if preserve:
        plane = layer.data[index] if index else layer.data
        take &= np.asarray(plane) == 0
    rows, cols = np.nonzero(take)
    return rows, cols, first_id + np.searchsorted(known, labels[rows, cols]).astype(np.int64)


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

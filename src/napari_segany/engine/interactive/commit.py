"""Commit rules: which pixels a commit writes, new label ids, and preview painting.

* :func:`commit_mask` computes the pixels a commit writes, within the mask's bounding box,
  never over other objects in preserve mode;
* :class:`MaxLabelTracker` hands out new ids without scanning the whole label image each time;
* :func:`paint_preview` replaces an object's mask in a preview array, touching only its boxes.
"""
from __future__ import annotations

import numpy as np

from .masks import BBox, ObjectMask, mask_bbox, union_bbox


def commit_mask(labels_view: np.ndarray, mask: np.ndarray, new_id: int, preserve: bool = True,
                offset: tuple[int, int] = (0, 0), write: bool = False
                ) -> tuple[np.ndarray, np.ndarray]:
    """The (rows, cols) of ``labels_view`` a commit of ``mask`` with ``new_id`` changes.

    ``mask`` is a bool array placed at ``offset`` (row, col) in ``labels_view`` (a crop, as in
    :class:`ObjectMask`, or a full-size mask at (0, 0)); only its bounding box is read.  With
    ``preserve`` only background (0) pixels are taken, so existing objects are never
    overwritten.  ``write=True`` also assigns them (scripts); the GUI passes the indices to
    the Labels layer's undo-aware ``data_setitem`` instead.
    """
    mask = np.asarray(mask, bool)
    bbox = mask_bbox(mask)
    if bbox is None:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    r0, r1, c0, c1 = bbox
    orow, ocol = offset
    region = labels_view[orow + r0: orow + r1, ocol + c0: ocol + c1]
    take = mask[r0:r1, c0:c1]
    if take.shape != region.shape:
        raise ValueError(f"The mask at {offset} does not fit in labels of shape {labels_view.shape}.")
    if preserve:
        take = take & (region == 0)
    rows, cols = np.nonzero(take)
    rows += orow + r0
    cols += ocol + c0
    if write:
        labels_view[rows, cols] = new_id
    return rows, cols


class MaxLabelTracker:
    """The largest label id in use, scanned once and then updated by what is written."""

    def __init__(self):
        self._max: int | None = None

    def next_id(self, data) -> int:
        if self._max is None:
            self._max = int(np.max(data)) if np.size(data) else 0
        return self._max + 1

    def observe(self, value) -> None:
        """Record ids that were written (by a commit, or by the user painting)."""
        if self._max is not None:
            self._max = max(self._max, int(np.max(value)))

    def invalidate(self) -> None:
        """The data was replaced: scan again next time."""
        self._max = None


def paint_preview(preview: np.ndarray, old: ObjectMask | None, new: ObjectMask | None,
                  value: int, origin: tuple[int, int] = (0, 0)) -> BBox | None:
    """Replace an object's previous mask by its new one in a 2D preview array, in place.

    ``preview`` may be a window of the slice starting at ``origin`` (row, col) that holds
    both bounding boxes.  Only the two bounding boxes are touched; returns their union in
    slice coordinates (the region to refresh).
    """
    orow, ocol = origin
    if old is not None and old.bbox is not None:
        r0, r1, c0, c1 = old.bbox
        region = preview[r0 - orow:r1 - orow, c0 - ocol:c1 - ocol]
        region[region == value] = 0
    if new is not None and new.bbox is not None:
        r0, r1, c0, c1 = new.bbox
        preview[r0 - orow:r1 - orow, c0 - ocol:c1 - ocol][new.crop] = value
    return union_bbox(old.bbox if old else None, new.bbox if new else None)

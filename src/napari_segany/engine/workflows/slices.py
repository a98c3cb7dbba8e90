"""Per-slice masks linked into 3D objects: :func:`link_slices` and its streaming core.

A stack segmented slice by slice (everything mode on each plane) numbers its objects anew on
every slice.  Linking gives one id per 3D object: masks on neighbouring slices overlapping at
IoU >= ``min_iou`` are the same object, matched one to one (the assignment of maximal total
IoU, so a mask continues at most one mask of the previous slice).  Slices are only compared
with their neighbours: an object interrupted by a slice where it has no mask becomes two.
"""
from __future__ import annotations

import numpy as np

from .overlap import check_labels, match_one_to_one, overlaps, plane_objects

LABEL_DTYPE = np.int32


def check_min_iou(min_iou: float, name: str = "min_iou") -> float:
    if not 0.0 < float(min_iou) <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {min_iou}: 0.5 asks for masks that "
                         "overlap more than they differ.")
    return float(min_iou)


class SliceLinker:
    """Links 2D label planes given one at a time (any length of stack, one plane in memory).

    ``push(plane)`` returns the plane with global ids: the ids of the matched objects of the
    previous plane, then new ids numbered in order of first appearance (row-major first
    pixel).  ``count`` is the number of ids given so far (ids are 1..count)."""

    def __init__(self, min_iou: float = 0.5):
        self.min_iou = check_min_iou(min_iou)
        self.count = 0
        self._previous = None  # PlaneObjects of the last plane
        self._previous_ids = None  # compact number -> global id of the last plane

    def push(self, plane: np.ndarray) -> np.ndarray:
        plane = np.asarray(plane)
        objects = plane_objects(plane)
        global_ids = np.zeros(len(objects) + 1, LABEL_DTYPE)
        if self._previous is not None and len(objects) and len(self._previous):
            ov = overlaps(self._previous, objects)
            rows, cols = match_one_to_one(ov, ov.iou, self.min_iou)
            global_ids[cols + 1] = self._previous_ids[rows + 1]
        new = np.flatnonzero(global_ids[1:] == 0)
        new = new[np.argsort(objects.first[new], kind="stable")]
        global_ids[new + 1] = np.arange(self.count + 1, self.count + 1 + len(new))
        self.count += len(new)
        self._previous, self._previous_ids = objects, global_ids
        return global_ids[objects.index].reshape(plane.shape)


def link_slices(labels, axis: int = 0, min_iou: float = 0.5, out=None) -> np.ndarray:
    """One id per 3D object from per-slice labels.

    Args:
        labels: (Z, Y, X) integer labels (any axis order, see ``axis``) with independent ids
            on each slice, 0 background; numpy, or anything sliceable (zarr, dask, memmap):
            it is read one slice at a time.
        axis: the slice axis.
        min_iou: masks on neighbouring slices with IoU >= min_iou (0 < min_iou <= 1) get one
            id; matching is one to one, of maximal total IoU.
        out: an integer array of labels' shape to write into (e.g. a zarr array for a
            volume larger than memory); default a new int32 array.

    Returns:
        Labels of the same shape and axis order (int32 unless ``out``): ids 1..N numbered
        in order of first appearance (slice by slice along ``axis``, then row-major), 0
        stays background.  Memory: the output, plus two slices' bookkeeping.

    Raises:
        ImageError: labels that are not an integer 3D array, or negative ids.
        ValueError: min_iou outside (0, 1].
    """
    check_labels(labels, 3, "link_slices: labels")
    axis = _check_axis(axis, 3)
    linker = SliceLinker(min_iou)
    if out is None:
        out = np.zeros(labels.shape, LABEL_DTYPE)
    elif tuple(out.shape) != tuple(labels.shape):
        raise ValueError(f"out has shape {tuple(out.shape)}, labels {tuple(labels.shape)}: "
                         "give an output of the same shape.")
    largest = np.iinfo(out.dtype).max if np.dtype(out.dtype).kind in "iu" else None
    for z in range(labels.shape[axis]):
        index = _plane_index(axis, z)
        plane = linker.push(np.asarray(labels[index]))
        if largest is not None and linker.count > largest:
            raise ValueError(f"{linker.count} objects do not fit out's type {out.dtype}: "
                             "give an int32 output.")
        out[index] = plane
    return out


def _check_axis(axis: int, ndim: int) -> int:
    if not -ndim <= int(axis) < ndim:
        raise ValueError(f"axis {axis} does not exist in a {ndim}D array: use 0..{ndim - 1}.")
    return int(axis) % ndim


def _plane_index(axis: int, i: int) -> tuple:
    index = [slice(None)] * 3
    index[axis] = i
    return tuple(index)

"""Per-slice masks linked into 3D objects: :func:`link_slices` and its streaming core.

A stack segmented slice by slice (everything mode on each plane) numbers its objects anew on
every slice.  Linking gives one id per 3D object: masks on neighbouring slices overlapping at
IoU >= ``min_iou`` are the same object, matched one to one (the assignment of maximal total
IoU, so a mask continues at most one mask of the previous slice), and an object's small end
slice joins it (see :mod:`.slice_linker`).  Slices are only compared with their neighbours:
an object interrupted by a slice where it has no mask becomes two.
"""
from __future__ import annotations

import numpy as np

from .overlap import LABEL_DTYPE, check_labels, check_min_iou
from .slice_linker import SliceLinker


def link_slices(labels, axis: int = 0, min_iou: float = 0.5, out=None) -> np.ndarray:
    """One id per 3D object from per-slice labels.

    Args:
        labels: (Z, Y, X) integer labels (any axis order, see ``axis``) with independent ids
            on each slice, 0 background; numpy, or anything sliceable (zarr, dask, memmap):
            it is read one slice at a time.
        axis: the slice axis.
        min_iou: masks on neighbouring slices with IoU >= min_iou (0 < min_iou <= 1) get one
            id; matching is one to one, of maximal total IoU.  A mask linked to neither
            neighbour joins the neighbouring object it lies at least half inside, where that
            object ends (an object's small tip slice).
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
    linker = SliceLinker(check_min_iou(min_iou))
    if out is None:
        out = np.zeros(labels.shape, LABEL_DTYPE)
    elif tuple(out.shape) != tuple(labels.shape):
        raise ValueError(f"out has shape {tuple(out.shape)}, labels {tuple(labels.shape)}: "
                         "give an output of the same shape.")
    largest = np.iinfo(out.dtype).max if np.dtype(out.dtype).kind in "iu" else None
    n = labels.shape[axis]
    for z in range(n + 1):
        plane = linker.push(np.asarray(labels[_plane_index(axis, z)])) if z < n else linker.finish()
        if largest is not None and linker.count > largest:
            raise ValueError(f"{linker.count} objects do not fit out's type {out.dtype}: "
                             "give an int32 output.")
        if plane is not None:  # the plane before z is final once z is seen
            out[_plane_index(axis, z - 1)] = plane
    return out


def _check_axis(axis: int, ndim: int) -> int:
    if not -ndim <= int(axis) < ndim:
        raise ValueError(f"axis {axis} does not exist in a {ndim}D array: use 0..{ndim - 1}.")
    return int(axis) % ndim


def _plane_index(axis: int, i: int) -> tuple:
    index = [slice(None)] * 3
    index[axis] = i
    return tuple(index)

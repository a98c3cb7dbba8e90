"""Overlaps between the objects of two label planes, and their one-to-one matching.

Both tools of this package (slices into 3D objects, frames into tracks) compare two
neighbouring 2D label planes.  Overlaps are counted sparsely: every pixel where both planes
hold an object gives one (object in a, object in b) pair code, and the codes are counted
once (``np.unique``), so the cost is that of sorting the overlapping pixels, whatever the
number of objects: no n x m mask loop, no n x m array.  The optimal one-to-one matching
(maximum total IoU, scipy's ``linear_sum_assignment``) is solved per connected group of
candidate pairs, so its matrices stay as small as the groups.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ImageError

LABEL_DTYPE = np.int32  # the output labels of linking and tracking


@dataclass(frozen=True)
class PlaneObjects:
    """The objects of one 2D label plane, numbered compactly 1..n in order of their ids.

    ``ids[k]`` is the label id of object k + 1, ``first[k]`` the flat (row-major) index of its
    first pixel, ``areas[k]`` its pixel count; ``index`` (H * W,) maps each pixel to its compact
    number (0: background)."""

    ids: np.ndarray
    first: np.ndarray
    areas: np.ndarray
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Overlaps:
    """Sparse overlaps of two planes: pairs ``(a[i], b[i])`` of compact numbers (0-based)
    sharing ``inter[i]`` pixels, with the areas of both objects and the IoU."""

    a: np.ndarray
    b: np.ndarray
    inter: np.ndarray
    area_a: np.ndarray
    area_b: np.ndarray

    @property
    def iou(self) -> np.ndarray:
        return self.inter / (self.area_a + self.area_b - self.inter)

    def subset(self, keep: np.ndarray) -> "Overlaps":
        return Overlaps(self.a[keep], self.b[keep], self.inter[keep], self.area_a[keep],
                        self.area_b[keep])


def check_labels(labels, ndim: int, what: str) -> None:
    """Raise ImageError unless ``labels`` is an integer array of ``ndim`` dimensions."""
    dtype = np.dtype(getattr(labels, "dtype", np.asarray(labels).dtype))
    shape = tuple(getattr(labels, "shape", np.shape(labels)))
    if dtype.kind == "b":
        raise ImageError(f"{what} must be integer labels, not a boolean mask: give each object "
                         "its own id first (e.g. skimage.measure.label(mask)).")
    if dtype.kind not in "iu":
        raise ImageError(f"{what} must be an integer label array, not {dtype}: convert whole-"
                         "numbered values with labels.astype(np.int32).")
    if len(shape) != ndim:
        raise ImageError(f"{what} must have {ndim} dimensions, got shape {shape}.")


def check_min_iou(min_iou: float, name: str = "min_iou") -> float:
    if not 0.0 < float(min_iou) <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {min_iou}: 0.5 asks for masks that "
                         "overlap more than they differ.")
    return float(min_iou)


def plane_objects(plane: np.ndarray) -> PlaneObjects:
    """The objects of one integer label plane (any shape; 0 is background)."""
    flat = np.asarray(plane).ravel()
    if flat.dtype.kind == "i" and flat.size and flat.min() < 0:
        raise ImageError("Label ids must be >= 0 (0 is background).")
    values, first, inverse, counts = np.unique(flat, return_index=True, return_inverse=True,
                                               return_counts=True)
    inverse = inverse.reshape(-1)
    if values.size and values[0] == 0:
        values, first, counts = values[1:], first[1:], counts[1:]
    else:  # no background in this plane: shift so that compact numbers start at 1
        inverse = inverse + 1
    return PlaneObjects(values, first, counts, inverse.astype(np.int64, copy=False))


def number_new(ids: np.ndarray, first: np.ndarray, count: int) -> int:
    """Give the objects still without an id (``ids[k + 1] == 0``) the ids ``count + 1, ...``
    in order of first appearance (``first``: their first pixel's flat index); returns the
    new count."""
    new = np.flatnonzero(ids[1:] == 0)
    new = new[np.argsort(first[new], kind="stable")]
    ids[new + 1] = np.arange(count + 1, count + 1 + len(new))
    return count + len(new)


def overlaps(a: PlaneObjects, b: PlaneObjects) -> Overlaps:
    """Every pair of objects of ``a`` and ``b`` sharing at least one pixel."""
    both = (a.index > 0) & (b.index > 0)
    codes = a.index[both] * (len(b) + 1) + b.index[both]
    pairs, inter = np.unique(codes, return_counts=True)
    ia, ib = pairs // (len(b) + 1) - 1, pairs % (len(b) + 1) - 1
    return Overlaps(ia, ib, inter, a.areas[ia], b.areas[ib])


NO_PAIRS = (np.zeros(0, np.int64), np.zeros(0, np.int64))


def match_one_to_one(ov: Overlaps | None, score: np.ndarray | None, min_score: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The one-to-one matching of maximal total ``score`` among the pairs scoring at least
    ``min_score`` (0-based compact numbers of a and of b, in order of a)."""
    if ov is None:
        return NO_PAIRS
    keep = score >= min_score
    a, b, s = ov.a[keep], ov.b[keep], score[keep]
    if not len(a):
        return a, b
    groups = _pair_groups(a, b)
    rows_out, cols_out = [], []
    for g in np.unique(groups):
        sel = groups == g
        rows, cols = _solve(a[sel], b[sel], s[sel])
        rows_out.append(rows)
        cols_out.append(cols)
    rows, cols = np.concatenate(rows_out), np.concatenate(cols_out)
    order = np.argsort(rows, kind="stable")
    return rows[order], cols[order]


def _pair_groups(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected groups of the bipartite graph of candidate pairs (one label per pair)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ua, ra = np.unique(a, return_inverse=True)
    ub, rb = np.unique(b, return_inverse=True)
    n = len(ua) + len(ub)
    graph = coo_matrix((np.ones(len(a)), (ra, len(ua) + rb)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    return component[ra]


def _solve(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(a) == 1:
        return a, b
    from scipy.optimize import linear_sum_assignment

    ua, ra = np.unique(a, return_inverse=True)
    ub, rb = np.unique(b, return_inverse=True)
    matrix = np.zeros((len(ua), len(ub)))
    present = np.zeros(matrix.shape, bool)
    matrix[ra, rb] = s
    present[ra, rb] = True
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    real = present[rows, cols]  # a zero entry is "no pair", not a match
    return ua[rows[real]], ub[cols[real]]

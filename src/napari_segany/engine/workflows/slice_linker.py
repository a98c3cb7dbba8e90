"""The streaming core of :func:`link_slices`: planes in one at a time, linked planes out.

Two rules, applied between neighbouring slices only:

1. **IoU links**: masks overlapping at IoU >= ``min_iou`` are one object, matched one to one
   (the assignment of maximal total IoU).
2. **End slices**: a mask linked to neither neighbour by rule 1 (it would be a one-slice
   object) continues the neighbouring mask that holds at least half of its area, if that
   mask has no link on this side (it ends there).  Why: the last slice of a round object is
   much smaller than the one before (about a third for a sphere cut at a random height), so
   its IoU is low although it is plainly the object's tip.  Objects more than one slice
   thick are never joined by this rule.

A plane is final once the next one is seen (rule 2 looks one slice ahead): :meth:`push`
returns the previous plane's global ids, :meth:`finish` the last one.  Memory: two planes'
bookkeeping, whatever the stack's length.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .overlap import (
    LABEL_DTYPE, NO_PAIRS, Overlaps, PlaneObjects, check_min_iou, match_one_to_one, number_new,
    overlaps, plane_objects,
)

END_INSIDE = 0.5  # rule 2: the share of a one-slice mask inside the mask it continues


@dataclass
class _Plane:
    objects: PlaneObjects
    shape: tuple
    inherited: np.ndarray  # (n + 1,) global id taken from the previous plane (0: none)
    behind: Overlaps | None = None  # overlaps with the previous plane (a: previous, b: this)
    ahead_free: np.ndarray | None = None  # (n,) no link to the next plane (final planes)
    ids: np.ndarray | None = None  # (n + 1,) final global ids


class SliceLinker:
    """Links 2D label planes given one at a time (see the module docstring for the rules).

    New ids are 1, 2, ... in order of first appearance (plane by plane, then the row-major
    first pixel); ``count`` is the number given so far."""

    def __init__(self, min_iou: float = 0.5):
        self.min_iou = check_min_iou(min_iou)
        self.count = 0
        self._done: _Plane | None = None  # the last final plane
        self._pending: _Plane | None = None  # the plane waiting for its next neighbour

    def push(self, plane: np.ndarray) -> np.ndarray | None:
        """Take the next plane; return the previous one with global ids (None at first)."""
        plane = np.asarray(plane)
        new = _Plane(plane_objects(plane), plane.shape, np.zeros(0))
        new.inherited = np.zeros(len(new.objects) + 1, LABEL_DTYPE)
        out = None
        if self._pending is not None:
            out = self._finalize(self._pending, new)
        self._pending = new
        return out

    def finish(self) -> np.ndarray | None:
        """The last plane with global ids (None when no plane was pushed)."""
        if self._pending is None:
            return None
        out, self._pending = self._finalize(self._pending, None), None
        return out

    def _finalize(self, plane: _Plane, after: _Plane | None) -> np.ndarray:
        ahead = _overlaps(plane.objects, after.objects) if after is not None else None
        rows, cols = match_one_to_one(ahead, None if ahead is None else ahead.iou, self.min_iou)
        lonely = np.ones(len(plane.objects), bool)
        lonely[rows] = False
        lonely &= plane.inherited[1:] == 0  # linked to neither neighbour by IoU
        self._attach_behind(plane, lonely)
        lonely &= plane.inherited[1:] == 0  # and not attached behind
        ids = plane.inherited.copy()
        self.count = number_new(ids, plane.objects.first, self.count)
        if after is not None:
            taken = np.zeros(len(after.objects), bool)
            taken[cols] = True
            front_rows, front_cols = _attach(ahead, lonely, ~taken)
            rows, cols = np.r_[rows, front_rows], np.r_[cols, front_cols]
            after.inherited[cols + 1] = ids[rows + 1]
            after.behind = ahead
        plane.ids = ids
        plane.ahead_free = np.ones(len(plane.objects), bool)
        plane.ahead_free[rows] = False
        self._done = plane
        return ids[plane.objects.index].reshape(plane.shape)

    def _attach_behind(self, plane: _Plane, lonely: np.ndarray) -> None:
        """Rule 2 towards the previous plane: a lonely mask takes the id of the free mask
        behind it that holds at least END_INSIDE of it."""
        done = self._done
        if done is None or plane.behind is None or not lonely.any():
            return
        flipped = Overlaps(plane.behind.b, plane.behind.a, plane.behind.inter,
                           plane.behind.area_b, plane.behind.area_a)
        rows, cols = _attach(flipped, lonely, done.ahead_free)
        plane.inherited[rows + 1] = done.ids[cols + 1]


def _overlaps(a: PlaneObjects, b: PlaneObjects) -> Overlaps | None:
    return overlaps(a, b) if len(a) and len(b) else None


def _attach(ov: Overlaps | None, lonely_a: np.ndarray, free_b: np.ndarray):
    """Rule 2: pairs (lonely mask of a, free mask of b) with at least END_INSIDE of the a
    mask inside the b mask, one to one (largest shares first)."""
    if ov is None or not lonely_a.any():
        return NO_PAIRS
    candidates = ov.subset(lonely_a[ov.a] & free_b[ov.b])
    return match_one_to_one(candidates, candidates.inter / candidates.area_a, END_INSIDE)

"""Per-frame masks linked over time into tracks, with divisions: :func:`track_labels`.

Each pair of consecutive frames is linked in two steps:

1. **divisions** (see :class:`DivisionRule`): a parent on frame t whose area is covered by
   two objects of frame t + 1 ends there, and the two start as its daughters;
2. **continuations**: among the other objects, the one-to-one assignment of maximal total
   IoU (scipy's ``linear_sum_assignment``) over the pairs with IoU >= ``min_iou``.

An object of frame t + 1 that is neither starts a new track; one of frame t that is neither
ends its track.  Only consecutive frames are compared (no gap closing: join tracks broken by
a missing mask with ``merge_tracks``).  Memory: the output labels plus two frames' bookkeeping.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .overlap import (
    LABEL_DTYPE, Overlaps, check_labels, check_min_iou, match_one_to_one, number_new, overlaps,
    plane_objects,
)
from .tracks import TrackingResult, frame_tracks, sort_tracks


@dataclass(frozen=True)
class DivisionRule:
    """When a parent P of frame t divides into daughters D1, D2 of frame t + 1.

    With ``|X ∩ Y|`` the pixels two masks share (same row and column on both frames):

    1. each daughter lies mostly where the parent was: ``|Di ∩ P| >= inside * |Di|``, and P
       is, of all objects of frame t, the one sharing the most pixels with Di;
    2. each daughter takes a real share of the parent: ``|Di ∩ P| >= share * |P|`` (so a
       small neighbour or a speck inside the parent's old outline is not a daughter);
    3. together they cover the parent: ``|D1 ∩ P| + |D2 ∩ P| >= covered * |P|``.

    When more than two objects pass 1 and 2, the two sharing the most pixels with P are the
    daughters.  Defaults: inside 0.5, share 0.2, covered 0.5: two daughters born inside the
    parent's outline that together fill at least half of it pass (e.g. a disk of 193 px
    followed by two disks of 69 px, 5 px either side of its centre: shares 0.28 each, 0.57
    together); a cell that moves and keeps its shape has one successor, not two, and a speck
    or a neighbour's edge in its old outline fails the share rule.
    """

    inside: float = 0.5
    share: float = 0.2
    covered: float = 0.5

    def find(self, ov: Overlaps) -> np.ndarray:
        """(K, 3) rows ``parent, daughter1, daughter2`` (0-based compact numbers of the two
        frames) of the divisions between two frames with overlaps ``ov``."""
        best = _largest_per_b(ov)
        a, b, inter = ov.a[best], ov.b[best], ov.inter[best]
        ok = (inter >= self.inside * ov.area_b[best]) & (inter >= self.share * ov.area_a[best])
        a, b, inter, area_a = a[ok], b[ok], inter[ok], ov.area_a[best][ok]
        order = np.lexsort((-inter, a))  # by parent, largest share first
        a, b, inter, area_a = a[order], b[order], inter[order], area_a[order]
        first = np.r_[True, a[1:] != a[:-1]]
        second = np.r_[False, first[:-1]] & ~first  # the runner-up of each parent
        one, two = np.flatnonzero(second) - 1, np.flatnonzero(second)
        covered = inter[one] + inter[two] >= self.covered * area_a[one]
        return np.stack([a[one], b[one], b[two]], axis=1)[covered].reshape(-1, 3)


def _largest_per_b(ov: Overlaps) -> np.ndarray:
    """Index, for each object of b, of its pair sharing the most pixels (ties: lowest a)."""
    order = np.lexsort((ov.a, -ov.inter, ov.b))
    b_sorted = ov.b[order]
    return order[np.r_[True, b_sorted[1:] != b_sorted[:-1]]]


def track_labels(labels, min_iou: float = 0.3, divisions: bool | DivisionRule = True
                 ) -> TrackingResult:
    """Track objects through a time series of per-frame labels.

    Args:
        labels: (T, Y, X) integer labels, ids independent per frame (0 background), e.g.
            everything mode on every frame; numpy or sliceable (zarr, dask), read a frame
            at a time.
        min_iou: objects on consecutive frames with IoU >= min_iou continue one track
            (0 < min_iou <= 1; 0.3 tolerates movement of about a third of a diameter).
        divisions: True for the default :class:`DivisionRule`, a DivisionRule, or False to
            never divide.

    Returns:
        TrackingResult: ``labels`` (T, Y, X) int32 track ids 1..N in order of first
        appearance, ``tracks`` (N, 4) napari Tracks data ``track_id, t, y, x``, ``graph``
        ``{daughter: [parent]}``.

    Raises:
        ImageError: labels that are not an integer 3D array, or negative ids.
        ValueError: min_iou outside (0, 1].
    """
    check_labels(labels, 3, "track_labels: labels")
    min_iou = check_min_iou(min_iou)
    rule = DivisionRule() if divisions is True else (divisions or None)
    out = np.zeros(labels.shape, LABEL_DTYPE)
    linker = _FrameLinker(min_iou, rule, labels.shape[2])
    for t in range(labels.shape[0]):
        out[t] = linker.push(np.asarray(labels[t]))
    tracks = np.concatenate(linker.rows) if linker.rows else np.zeros((0, 4))
    return TrackingResult(out, sort_tracks(tracks), linker.graph)


class _FrameLinker:
    """Frame-by-frame state of :func:`track_labels`."""

    def __init__(self, min_iou: float, rule: DivisionRule | None, width: int):
        self.min_iou, self.rule, self.width = min_iou, rule, width
        self.count = 0
        self.graph: dict[int, list[int]] = {}
        self.rows: list[np.ndarray] = []
        self._previous = None
        self._previous_ids = None

    def push(self, frame: np.ndarray) -> np.ndarray:
        objects = plane_objects(frame)
        ids = np.zeros(len(objects) + 1, LABEL_DTYPE)
        parents = np.zeros(len(objects) + 1, np.int64)
        if self._previous is not None and len(objects) and len(self._previous):
            self._link(overlaps(self._previous, objects), ids, parents)
        before = self.count
        self.count = number_new(ids, objects.first, self.count)
        for k in np.flatnonzero((ids[1:] > before) & (parents[1:] > 0)):
            self.graph[int(ids[k + 1])] = [int(parents[k + 1])]
        self.rows.append(frame_tracks(objects.index, ids[1:], len(self.rows), self.width))
        self._previous, self._previous_ids = objects, ids
        return ids[objects.index].reshape(frame.shape)

    def _link(self, ov: Overlaps, ids: np.ndarray, parents: np.ndarray) -> None:
        """Fill ``ids`` (continued tracks) and ``parents`` (daughters' parent track ids)."""
        free = np.ones(len(ov.a), bool)
        if self.rule is not None and len(ov.a):
            split = self.rule.find(ov)
            parent_ids = self._previous_ids[split[:, 0] + 1]
            parents[split[:, 1] + 1] = parent_ids
            parents[split[:, 2] + 1] = parent_ids
            free = ~np.isin(ov.a, split[:, 0]) & ~np.isin(ov.b, split[:, 1:])
        kept = ov.subset(free)
        rows, cols = match_one_to_one(kept, kept.iou, self.min_iou)
        ids[cols + 1] = self._previous_ids[rows + 1]

"""What tracking returns, and the corrections a user makes to it.

:class:`TrackingResult` holds the (T, Y, X) track labels, napari's Tracks data and the
lineage graph.  :func:`merge_tracks`, :func:`split_track` and :func:`set_parent` return a
new, consistent result (labels, tracks and graph changed together); track ids are never
renumbered, so ids shown in a viewer stay valid (a correction may leave holes in 1..N).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import SegAnyError


@dataclass(frozen=True)
class TrackingResult:
    """Tracks of objects over time, with their lineage.

    Attributes:
        labels: (T, Y, X) int32, one id per track (0 background); a track that divides ends
            on the frame before its daughters appear.
        tracks: (N, 4) float64 napari Tracks data: rows ``track_id, t, y, x`` (the centroid of
            the track's mask on frame t, in pixels, y = row, x = column), sorted by id then t.
        graph: ``{daughter_id: [parent_id]}``, napari's Tracks ``graph``.
    """

    labels: np.ndarray
    tracks: np.ndarray
    graph: dict = field(default_factory=dict)

    @property
    def track_ids(self) -> np.ndarray:
        """The ids of the tracks, ascending."""
        return np.unique(self.tracks[:, 0]).astype(np.int64)

    def frames(self, track_id: int) -> np.ndarray:
        """The frames where ``track_id`` has a mask, ascending."""
        return self.tracks[self.tracks[:, 0] == track_id, 1].astype(np.int64)

    def lineage(self) -> np.ndarray:
        """(M, 4) int64 rows ``L B E P``: track id, first frame, last frame, parent (0: none),
        one per track, by id (the Cell Tracking Challenge's man_track.txt columns)."""
        ids = self.tracks[:, 0].astype(np.int64)
        t = self.tracks[:, 1].astype(np.int64)
        starts = np.r_[0, np.flatnonzero(np.diff(ids)) + 1]
        ends = np.r_[starts[1:], len(ids)] - 1
        parents = [self.graph.get(int(i), [0])[0] for i in ids[starts]]
        return np.stack([ids[starts], t[starts], t[ends], np.asarray(parents, np.int64)], axis=1)

    def daughters(self, track_id: int) -> list[int]:
        return sorted(d for d, parents in self.graph.items() if track_id in parents)


def frame_tracks(index: np.ndarray, ids: np.ndarray, t: int, width: int) -> np.ndarray:
    """Tracks rows (len(ids), 4) of one frame: ``index`` (H * W,) compact object numbers
    (0 background, k + 1 for ``ids[k]``), centroids from pixel sums (no per-object loop)."""
    n = len(ids) + 1
    flat = np.arange(index.size)
    area = np.bincount(index, minlength=n)[1:]
    rows = np.bincount(index, weights=flat // width, minlength=n)[1:]
    cols = np.bincount(index, weights=flat % width, minlength=n)[1:]
    safe = np.maximum(area, 1)
    return np.stack([ids.astype(np.float64), np.full(len(ids), float(t)), rows / safe, cols / safe],
                    axis=1)


def sort_tracks(tracks: np.ndarray) -> np.ndarray:
    order = np.lexsort((tracks[:, 1], tracks[:, 0]))
    return tracks[order]


def merge_tracks(result: TrackingResult, a: int, b: int, inplace: bool = False) -> TrackingResult:
    """Join tracks ``a`` and ``b`` (one object, broken into two tracks) into one.

    The merged track keeps the id of the one that starts first and ends as the later one
    ends (a gap between them is kept: write_ctc writes it as a gap-closing link); the later
    one's parent link is dropped and its daughters become the merged track's.  Raises
    SegAnyError when both tracks have a mask on one frame (two objects, not one broken
    track) or when the earlier one divides.  ``inplace``: change ``result.labels`` itself (a
    viewer's layer data) instead of a copy.
    """
    a, b = _existing(result, a), _existing(result, b)
    if a == b:
        raise SegAnyError(f"Track {a} cannot be merged with itself: choose two tracks.")
    first, later = sorted((a, b), key=lambda i: result.frames(i)[0])
    shared = np.intersect1d(result.frames(first), result.frames(later))
    if shared.size:
        raise SegAnyError(f"Tracks {a} and {b} both have a mask on frame {int(shared[0])}: "
                          "they are two objects. Split one of them first (split_track).")
    if result.daughters(first):
        raise SegAnyError(f"Track {first} divides before track {later} starts: remove the "
                          f"division first (set_parent(result, daughter, None)).")
    labels = _relabel(result, later, first, result.frames(later), inplace)
    tracks = result.tracks.copy()
    tracks[tracks[:, 0] == later, 0] = first
    graph = {d: ([first] if p == [later] else p) for d, p in result.graph.items() if d != later}
    return TrackingResult(labels, sort_tracks(tracks), graph)


def split_track(result: TrackingResult, track_id: int, t: int, inplace: bool = False
                ) -> TrackingResult:
    """Cut ``track_id`` before frame ``t``: its masks from ``t`` on get a new id (the largest
    id + 1), with no parent (the link was wrong); the track's daughters follow the new part.

    Raises SegAnyError unless the track has masks both before ``t`` and from ``t`` on.
    """
    track_id = _existing(result, track_id)
    frames = result.frames(track_id)
    later = frames[frames >= t]
    if not len(later) or later[0] == frames[0]:
        raise SegAnyError(f"Track {track_id} spans frames {frames[0]}..{frames[-1]}: cut it "
                          f"at a frame after its first ({frames[0] + 1}..{frames[-1]}), not {t}.")
    new = int(result.tracks[:, 0].max()) + 1
    labels = _relabel(result, track_id, new, later, inplace)
    tracks = result.tracks.copy()
    tracks[(tracks[:, 0] == track_id) & (tracks[:, 1] >= t), 0] = new
    graph = {d: ([new] if p == [track_id] else p) for d, p in result.graph.items()}
    return TrackingResult(labels, sort_tracks(tracks), graph)


def set_parent(result: TrackingResult, track_id: int, parent: int | None) -> TrackingResult:
    """Make ``parent`` the parent of ``track_id`` (a division or a gap-closing link), or remove
    its parent with None.  Raises SegAnyError unless the parent ends before the track starts."""
    track_id = _existing(result, track_id)
    graph = {d: p for d, p in result.graph.items() if d != track_id}
    if parent is not None:
        parent = _existing(result, parent)
        end, start = result.frames(parent)[-1], result.frames(track_id)[0]
        if end >= start:
            raise SegAnyError(f"Track {parent} ends on frame {end}, after track {track_id} "
                              f"starts (frame {start}): a parent must end before its daughters "
                              "begin. Split the parent first (split_track).")
        graph[track_id] = [parent]
    return TrackingResult(result.labels, result.tracks, graph)


def _existing(result: TrackingResult, track_id) -> int:
    track_id = int(track_id)
    if not np.any(result.tracks[:, 0] == track_id):
        raise SegAnyError(f"There is no track {track_id}: the ids are {_ids_text(result)}.")
    return track_id


def _ids_text(result: TrackingResult) -> str:
    ids = result.track_ids
    return ", ".join(map(str, ids[:10])) + (", ..." if len(ids) > 10 else "")


def _relabel(result: TrackingResult, old: int, new: int, frames, inplace: bool) -> np.ndarray:
    labels = result.labels if inplace else result.labels.copy()
    for t in frames:
        plane = labels[int(t)]
        plane[plane == old] = new
    return labels

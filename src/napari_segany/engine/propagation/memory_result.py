"""What a SAM 2 memory propagation returns: every object's mask on every visited frame, and
the label writes (the :class:`~.result.PropagationResult` form: ``label_changes`` ->
``(coords, values)`` for napari's undo-aware ``Labels.data_setitem``, one undo step;
``write_into`` for scripts).

Per object, the masks are a :class:`~.result.PropagationResult` (bounding-box crops, one
:class:`~.result.SliceReport` per visited frame), so memory grows with the objects, not
with the frames' size.  Overlaps between objects were resolved when the masks were made
(:func:`~..video.frame_labels`: the highest positive logit wins), so the crops of one frame
are disjoint.

Shapes and axes (napari's order): ``labels`` has the volume's spatial shape (..., Y, X);
``axis`` is the leading axis the frames run along, ``position`` the index of the frames'
plane on every leading axis.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .result import SEED, PropagationResult, _coords


@dataclass
class MemoryPropagationResult:
    """The objects ``obj_ids`` (= label values) on the frames visited by one propagation.

    tracks: obj_id -> its :class:`PropagationResult` (status "seed" on frames prompted with
    a mask, "ok" with a non-empty mask, "skipped" where SAM 2 sees the object absent; score:
    the object-presence probability).  frames: the visited frame indices, sorted.
    stops: per direction, "end" (the stack's end) or "range" (``stop_at``).
    ``session``: set by :func:`~.memory.iter_propagate_memory` (corrections, then
    ``session.iter_propagate()`` again).
    """

    obj_ids: list[int]
    shape: tuple[int, int]
    length: int
    axis: int
    position: tuple[int, ...]
    seed: int
    tracks: dict[int, PropagationResult] = field(default_factory=dict)
    frames: list[int] = field(default_factory=list)
    stops: dict[str, str] = field(default_factory=dict)
    #: the :class:`~.memory.MemorySession` of a one-shot job (corrections, propagate again)
    session: object | None = field(default=None, repr=False, compare=False)

    @cached_property
    def _kept(self) -> dict:
        """obj_id -> {frame: report} of the kept masks (read once the result is complete)."""
        return {obj_id: track.kept for obj_id, track in self.tracks.items()}

    def labels_on(self, index: int, dtype=None) -> np.ndarray:
        """(Y, X) labels of frame ``index`` (0 where no object; zeros if it was not visited)."""
        dtype = dtype or np.min_scalar_type(max(self.obj_ids, default=1))
        out = np.zeros(self.shape, dtype)
        for obj_id, kept in self._kept.items():
            report = kept.get(index)
            if report is not None and report.bbox is not None:
                r0, r1, c0, c1 = report.bbox
                out[r0:r1, c0:c1][report.crop] = obj_id
        return out

    def _is_seed(self, index: int) -> bool:
        return any(kept[index].status == SEED for kept in self._kept.values() if index in kept)

    def label_changes(self, labels, preserve: bool = True, replace: bool = True,
                      include_seed: bool = False) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """The writes that put every visited frame's masks into ``labels``: (coords, values).

        On each visited frame (frames prompted with a mask -- the seed -- only when asked)
        every object's mask gets its id; with ``preserve`` only where ``labels`` is 0 or one
        of the tracked ids (other objects stay); with ``replace`` the tracked ids' old pixels
        that no mask covers now become 0 (an object that left the frame is cleared).  Only
        the visited planes are read.
        """
        parts, values = [], []
        tracked_ids = np.asarray(self.obj_ids)
        for index in self.frames:
            if self._is_seed(index) and not include_seed:
                continue
            where = self.slice_position(index)
            plane = np.asarray(labels[where])
            new = plane.copy()
            tracked = np.isin(plane, tracked_ids)
            if replace:
                new[tracked] = 0
            free = (plane == 0) | tracked if preserve else np.ones(plane.shape, bool)
            masks = self.labels_on(index, plane.dtype)
            take = (masks != 0) & free
            new[take] = masks[take]
            rows, cols = np.nonzero(new != plane)
            parts.append(_coords(where, rows, cols))
            values.append(new[rows, cols])
        if not parts:
            empty = np.zeros(0, np.intp)
            return tuple(empty for _ in range(len(self.position) + 2)), np.zeros(0, np.int64)
        coords = tuple(np.concatenate(axis) for axis in zip(*parts))
        return coords, np.concatenate(values).astype(labels.dtype, copy=False)

    def write_into(self, labels: np.ndarray, preserve: bool = True, replace: bool = True,
                   include_seed: bool = False) -> int:
        """Write every visited frame into a numpy ``labels`` array in place; returns the
        pixels changed."""
        coords, values = self.label_changes(labels, preserve, replace, include_seed)
        labels[coords] = values
        return int(values.size)

    def slice_position(self, index: int) -> tuple[int, ...]:
        """The leading-axes index of frame ``index`` (for labels of the volume's shape)."""
        where = list(self.position)
        where[self.axis] = index
        return tuple(where)

    def summary(self) -> str:
        """One line per object: on how many visited frames it was found."""
        lines = [f"{len(self.frames)} frame(s) visited; stopped: "
                 + ", ".join(f"{d} {r}" for d, r in self.stops.items())]
        for obj_id, track in self.tracks.items():
            found = sum(1 for r in track.reports if r.kept)
            lines.append(f"object {obj_id}: found on {found} of {len(self.frames)} frame(s)")
        return "\n".join(lines)

"""What a propagation returns: one report per visited slice, the kept masks, why it stopped,
and the label writes (scripts write them at once; the GUI hands them to napari's undo-aware
``Labels.data_setitem`` as one undo step).

Masks are kept as bounding-box crops (half-open (row0, row1, col0, col1) in the slice), so a
result costs memory in proportion to the object, not to the volume.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..interactive import commit_mask
from ..interactive.masks import BBox, crop_to_full

SEED, OK, SKIPPED = "seed", "ok", "skipped"
KEPT = (SEED, OK)


@dataclass(frozen=True)
class SliceReport:
    """One visited slice.

    status: "seed", "ok" (kept), "skipped" (empty, walked past), or the stop rule that
    rejected it: "low_score", "area_jump", "empty" (the walk in that direction ends there).
    score: the model's predicted IoU; area: pixels of the mask; area_ratio: area / the area
    of the previous kept mask (nan for the seed).
    """

    index: int
    direction: str
    status: str
    score: float
    area: int
    area_ratio: float
    bbox: BBox | None
    crop: np.ndarray = field(repr=False)  # bool (row1 - row0, col1 - col0)

    @property
    def kept(self) -> bool:
        return self.status in KEPT

    @property
    def rejected(self) -> bool:
        return self.status not in (*KEPT, SKIPPED)

    def full(self, shape: tuple[int, int]) -> np.ndarray:
        return crop_to_full(self.crop, self.bbox, shape)


@dataclass
class PropagationResult:
    """The track of one object along ``axis`` of a stack of ``length`` slices of ``shape``.

    position: the seed's index on every leading axis (the axes not walked along stay there).
    stops: per direction, why the walk ended: "end" (volume end), "range" (the user's
    range), or the status of the rejected slice.  encoded: embeddings computed (not cached).
    """

    seed: int
    shape: tuple[int, int]
    length: int
    axis: int = 0
    position: tuple[int, ...] = (0,)
    reports: list[SliceReport] = field(default_factory=list)
    stops: dict[str, str] = field(default_factory=dict)
    encoded: int = 0

    def add(self, report: SliceReport) -> None:
        self.reports.append(report)

    @property
    def kept(self) -> dict[int, SliceReport]:
        """Slice index -> report of the kept masks (the seed included), in index order."""
        return {r.index: r for r in sorted(self.reports, key=lambda r: r.index) if r.kept}

    @property
    def indices(self) -> list[int]:
        return list(self.kept)

    def mask(self, index: int) -> np.ndarray:
        """(Y, X) bool mask on slice ``index`` (all False where nothing was kept)."""
        report = self.kept.get(index)
        return np.zeros(self.shape, bool) if report is None else report.full(self.shape)

    def to_volume(self) -> np.ndarray:
        """(length, Y, X) bool masks along the walked axis (allocates the full stack)."""
        out = np.zeros((self.length, *self.shape), bool)
        for index, report in self.kept.items():
            out[index] = report.full(self.shape)
        return out

    def slice_position(self, index: int) -> tuple[int, ...]:
        """The leading-axes index of slice ``index`` (for labels of the volume's shape)."""
        where = list(self.position)
        where[self.axis] = index
        return tuple(where)

    def label_changes(self, labels, value: int, preserve: bool = True, replace: bool = True,
                      include_seed: bool = False) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """The writes that put the track into ``labels`` with id ``value``: (coords, values).

        labels: (..., Y, X) with the volume's spatial shape.  On each kept slice (not the seed
        unless asked) the mask gets ``value``; with ``preserve`` only where labels are 0 (other
        objects stay); with ``replace`` the object's old pixels outside the mask become 0.
        Only kept slices are read, and only the planes they lie on.
        """
        parts, values = [], []
        for index, report in self.kept.items():
            if report.status == SEED and not include_seed:
                continue
            where = self.slice_position(index)
            plane = np.asarray(labels[where])
            rows, cols = commit_mask(plane, report.crop, value, preserve, offset=report.bbox[::2])
            parts.append(_coords(where, rows, cols))
            values.append(np.full(rows.size, value))
            if replace:
                old_r, old_c = np.nonzero((plane == value) & ~report.full(self.shape))
                parts.append(_coords(where, old_r, old_c))
                values.append(np.zeros(old_r.size, np.int64))
        if not parts:
            empty = np.zeros(0, np.intp)
            return tuple(empty for _ in range(len(self.position) + 2)), np.zeros(0, np.int64)
        coords = tuple(np.concatenate(axis) for axis in zip(*parts))
        return coords, np.concatenate(values).astype(labels.dtype, copy=False)

    def write_into(self, labels: np.ndarray, value: int, preserve: bool = True,
                   replace: bool = True, include_seed: bool = False) -> int:
        """Write the track into a numpy ``labels`` array in place; returns pixels changed.
        ``include_seed``: write the seed slice too (a script's labels may not hold it yet)."""
        coords, values = self.label_changes(labels, value, preserve, replace, include_seed)
        changed = labels[coords] != values
        labels[coords] = values
        return int(changed.sum())

    def summary(self) -> str:
        """One line per direction: how far it went and why it stopped."""
        lines = []
        for direction, reason in self.stops.items():
            mine = [r for r in self.reports if r.direction == direction and r.kept]
            reach = f"to slice {mine[-1].index}" if mine else "no slice"
            lines.append(f"{direction}: {len(mine)} slice(s), {reach}; stopped: {reason}")
        return "\n".join(lines)


def _coords(where: tuple[int, ...], rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, ...]:
    lead = tuple(np.full(rows.size, i, dtype=np.intp) for i in where)
    return (*lead, rows.astype(np.intp), cols.astype(np.intp))

"""What everything mode returns: records in the style of SAM's generator, and a label image.

``result.records[i]`` is a read-only mapping with SAM's keys: ``segmentation`` (H x W bool,
decoded on access from the compact store), ``area``, ``bbox`` (x, y, w, h from the mask, with
SAM's inclusive max: w = x1 - x0), ``predicted_iou``, ``stability_score``, ``point_coords``
([[x, y]], grid method) or ``box`` (x0, y0, x1, y1, box prompts), ``crop_box`` (x, y, w, h).

``result.labels`` (H x W int32) paints record ``i`` with id ``i + 1``, larger masks first, so
where masks overlap the smaller one wins: every object keeps its visible core, and the image
is non-overlapping.  :meth:`EverythingResult.filter` re-selects records without recomputing.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .candidates import Candidates
from .masks import CompactMask


class Record(Mapping):
    """One object: SAM-style keys, with ``segmentation`` decoded lazily."""

    def __init__(self, mask: CompactMask, fields: dict):
        self.mask = mask
        self._fields = fields

    def __getitem__(self, key):
        if key == "segmentation":
            return self.mask.decode()
        return self._fields[key]

    def __iter__(self):
        yield "segmentation"
        yield from self._fields

    def __len__(self) -> int:
        return len(self._fields) + 1


@dataclass
class EverythingResult:
    records: list[Record]
    image_shape: tuple[int, int]
    method: str
    n_prompts: int = 0  # prompts decoded (grid points or boxes); 0 for fastsam

    @cached_property
    def labels(self) -> np.ndarray:
        """(H, W) int32, kept: the documented type of the API's label image."""
        return self.paint(dtype=np.int32)

    def paint(self, out: np.ndarray | None = None, dtype=None) -> np.ndarray:
        """The label image of :attr:`labels`, not kept: into ``out`` (an (H, W) integer array,
        cleared first) or a new array of ``dtype`` (None: uint16 up to 65,535 objects, else
        int32).  For callers that hold the image elsewhere (e.g. a Labels layer)."""
        kind = labels_dtype(len(self.records)) if dtype is None else dtype
        return paint_labels([r.mask for r in self.records], self.image_shape, kind, out)

    def __len__(self) -> int:
        return len(self.records)

    def filter(self, min_area: int = 0, max_area: int | None = None, min_score: float | None = None,
               min_stability: float | None = None, max_contained: float | None = None
               ) -> "EverythingResult":
        """A new result with the records that pass; ``max_contained`` drops masks whose fraction
        inside a single larger kept mask exceeds it (e.g. 0.9 removes parts of objects)."""
        keep = [r for r in self.records if _passes(r, min_area, max_area, min_score, min_stability)]
        if max_contained is not None:
            keep = drop_contained(keep, max_contained)
        return EverythingResult(keep, self.image_shape, self.method, self.n_prompts)


def _passes(record, min_area, max_area, min_score, min_stability) -> bool:
    if record["area"] < min_area or (max_area is not None and record["area"] > max_area):
        return False
    if min_score is not None and record["predicted_iou"] < min_score:
        return False
    stability = record.get("stability_score")
    return min_stability is None or stability is None or stability >= min_stability


def paint_labels(masks: list[CompactMask], shape: tuple[int, int], dtype=np.int32,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Ids ``i + 1`` painted largest-first: smaller masks stay on top.

    ``out``: paint into this (H, W) integer array instead of a new one of ``dtype`` (it is
    cleared first), e.g. a slice of a Labels layer, so that no full-size temporary is made.
    Raises ValueError when the ids do not fit its type."""
    if out is not None and tuple(out.shape) != tuple(shape):
        raise ValueError(f"Cannot paint labels of shape {tuple(shape)} into {out.shape}.")
    kind = np.dtype(dtype if out is None else out.dtype)
    if len(masks) > np.iinfo(kind).max:
        raise ValueError(f"{len(masks)} ids do not fit {kind}.")
    if out is None:
        labels = np.zeros(shape, dtype=kind)
    else:
        labels = out
        labels[...] = 0
    for i in sorted(range(len(masks)), key=lambda i: -masks[i].area):
        m = masks[i]
        if not m.area:
            continue
        y0, x0, y1, x1 = m.bbox
        np.copyto(labels[y0:y1, x0:x1], i + 1, where=m.crop(), casting="unsafe")
    return labels


def labels_dtype(n: int) -> np.dtype:
    """The smallest label type for ids 1..n: uint16 (half of int32) up to 65,535 objects."""
    return np.dtype(np.uint16 if n <= np.iinfo(np.uint16).max else np.int32)


def drop_contained(records: list[Record], max_fraction: float) -> list[Record]:
    """Remove records with more than ``max_fraction`` of their area inside one larger record."""
    order = sorted(range(len(records)), key=lambda i: -records[i]["area"])
    kept: list[int] = []
    for i in order:
        if not any(_inside_fraction(records[i].mask, records[j].mask) > max_fraction for j in kept):
            kept.append(i)
    return [records[i] for i in sorted(kept)]


def _inside_fraction(small: CompactMask, big: CompactMask) -> float:
    if not small.area:
        return 1.0
    sy0, sx0, sy1, sx1 = small.bbox
    by0, bx0, by1, bx1 = big.bbox
    y0, x0, y1, x1 = max(sy0, by0), max(sx0, bx0), min(sy1, by1), min(sx1, bx1)
    if y0 >= y1 or x0 >= x1:
        return 0.0
    a = small.crop()[y0 - sy0:y1 - sy0, x0 - sx0:x1 - sx0]
    b = big.crop()[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0]
    return float((a & b).sum()) / small.area


def records_from_candidates(data: Candidates, method: str) -> list[Record]:
    """SAM-style records, in the candidates' order."""
    records = []
    for i, mask in enumerate(data.masks):
        x0, y0, x1, y1 = (float(v) for v in data.boxes[i])
        cx0, cy0, cx1, cy1 = (int(v) for v in data.crop_boxes[i])
        fields = {
            "area": mask.area,
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "predicted_iou": float(data.iou[i]),
            "stability_score": float(data.stability[i]),
            "crop_box": [cx0, cy0, cx1 - cx0, cy1 - cy0],
        }
        if not np.isnan(data.points[i]).any():
            fields["point_coords"] = [data.points[i].tolist()]
        if not np.isnan(data.prompt_boxes[i]).any():
            fields["box"] = data.prompt_boxes[i].tolist()
        records.append(Record(mask, fields))
    return records

"""Masks of objects kept as a bounding box + the crop inside it, and the box helpers.

Bounding boxes are half-open (row0, row1, col0, col1) in pixels of the 2D slice.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


#: A bounding box (row0, row1, col0, col1), half-open, in pixels of the 2D slice.
BBox = tuple[int, int, int, int]


def crop_to_full(crop: np.ndarray, bbox: BBox | None, shape: tuple[int, int]) -> np.ndarray:
    """A (H, W) bool mask from its crop and bbox (r0, r1, c0, c1); all False if bbox is None."""
    out = np.zeros(shape, bool)
    if bbox is not None:
        r0, r1, c0, c1 = bbox
        out[r0:r1, c0:c1] = crop
    return out


@dataclass(frozen=True)
class ObjectMask:
    """The shown mask of one object, cropped to its bounding box."""

    key: tuple
    bbox: BBox | None  # None: the mask is empty
    crop: np.ndarray  # bool (row1 - row0, col1 - col0)
    score: float
    candidate: int  # index of the shown candidate among n_candidates
    n_candidates: int

    @property
    def area(self) -> int:
        return int(self.crop.sum())

    def full(self, shape: tuple[int, int]) -> np.ndarray:
        """The mask at full size (for scripts; the GUI only ever writes the crop)."""
        return crop_to_full(self.crop, self.bbox, shape)


def mask_bbox(mask: np.ndarray) -> BBox | None:
    """Half-open bounding box of the True pixels of a 2D mask, None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def crop_to_bbox(mask: np.ndarray) -> tuple[BBox | None, np.ndarray]:
    bbox = mask_bbox(mask)
    if bbox is None:
        return None, np.zeros((0, 0), bool)
    r0, r1, c0, c1 = bbox
    return bbox, np.ascontiguousarray(mask[r0:r1, c0:c1])


def union_bbox(*boxes: BBox | None) -> BBox | None:
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), max(b[1] for b in boxes),
            min(b[2] for b in boxes), max(b[3] for b in boxes))

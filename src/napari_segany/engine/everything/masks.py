"""Compact masks: a bounding box plus the bit-packed crop inside it.

A full-image bool mask costs H*W bytes; thousands of candidates of a 4k image would not fit
in memory.  A :class:`CompactMask` keeps ``(y0, x0, y1, x1)`` (exclusive ends) and the crop
packed 8 pixels per byte, and decodes on demand.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage


@dataclass(frozen=True)
class CompactMask:
    shape: tuple[int, int]  # (H, W) of the full image
    bbox: tuple[int, int, int, int]  # y0, x0, y1, x1 (exclusive), all 0 for an empty mask
    packed: np.ndarray  # np.packbits(crop, axis=-1)
    area: int

    @classmethod
    def from_dense(cls, mask: np.ndarray, offset: tuple[int, int] = (0, 0),
                   shape: tuple[int, int] | None = None) -> "CompactMask":
        """Encode a bool mask; ``offset``/``shape`` place a crop-local mask in a larger image."""
        mask = np.asarray(mask, dtype=bool)
        shape = tuple(shape) if shape is not None else mask.shape
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            return cls(shape, (0, 0, 0, 0), np.zeros((0, 0), np.uint8), 0)
        cols = np.flatnonzero(mask.any(axis=0))
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        crop = mask[y0:y1, x0:x1]
        bbox = (int(y0 + offset[0]), int(x0 + offset[1]), int(y1 + offset[0]), int(x1 + offset[1]))
        return cls(shape, bbox, np.packbits(crop, axis=-1), int(crop.sum()))

    def crop(self) -> np.ndarray:
        """The bool mask inside :attr:`bbox`."""
        y0, x0, y1, x1 = self.bbox
        # unpackbits gives 0/1 bytes: viewed as bool without a second full-size copy
        return np.unpackbits(self.packed, axis=-1, count=x1 - x0).view(bool)

    def decode(self) -> np.ndarray:
        """The full (H, W) bool mask."""
        out = np.zeros(self.shape, dtype=bool)
        y0, x0, y1, x1 = self.bbox
        if self.area:
            out[y0:y1, x0:x1] = self.crop()
        return out

    @property
    def box_xyxy(self) -> tuple[int, int, int, int]:
        """x0, y0, x1, y1 with inclusive max (SAM's convention for mask boxes)."""
        y0, x0, y1, x1 = self.bbox
        return (x0, y0, x1 - 1, y1 - 1) if self.area else (0, 0, 0, 0)

    @property
    def nbytes(self) -> int:
        return int(self.packed.nbytes)


def encode_batch(masks: torch.Tensor, offset=(0, 0), shape=None) -> list[CompactMask]:
    """(N, h, w) bool torch masks -> CompactMasks (crop-local masks placed at ``offset``)."""
    array = masks.cpu().numpy()
    return [CompactMask.from_dense(m, offset, shape) for m in array]


def stability_score(logits: torch.Tensor, mask_threshold: float, offset: float) -> torch.Tensor:
    """SAM's stability: IoU of the masks thresholded at ``threshold +- offset``. (N, H, W) -> (N,)."""
    inter = (logits > (mask_threshold + offset)).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    union = (logits > (mask_threshold - offset)).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    return inter / union


def remove_small_regions(mask: np.ndarray, area_thresh: float, mode: str) -> tuple[np.ndarray, bool]:
    """SAM's postprocessing: fill holes (``mode='holes'``) or drop islands smaller than
    ``area_thresh`` (8-connectivity).  Returns the mask and whether it changed."""
    correct_holes = mode == "holes"
    working = correct_holes ^ mask
    regions, n_labels = ndimage.label(working, structure=np.ones((3, 3), bool))
    sizes = np.bincount(regions.ravel(), minlength=n_labels + 1)[1:]
    small = [i + 1 for i, s in enumerate(sizes) if s < area_thresh]
    if not small:
        return mask, False
    fill = [0] + small
    if not correct_holes:
        fill = [i for i in range(n_labels + 1) if i not in fill]
        if not fill:  # every island is small: keep the largest
            fill = [int(np.argmax(sizes)) + 1]
    return np.isin(regions, fill), True

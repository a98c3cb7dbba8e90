"""SAM's ``postprocess_small_regions`` on compact masks (``min_mask_region_area``)."""
from __future__ import annotations

import numpy as np
import torch

from ..detection import batched_nms
from .candidates import Candidates
from .masks import CompactMask, remove_small_regions


def postprocess_small_regions(data: Candidates, min_area: int, nms_thresh: float) -> Candidates:
    """Fill small holes and drop small islands of every mask, then NMS preferring unchanged
    masks (SAM's rule: changed masks get score 0).  Works on the crops: a one-pixel frame of
    background around each crop stands for the rest of the image."""
    new_masks, scores = [], []
    for mask in data.masks:
        new, changed = _clean(mask, min_area)
        new_masks.append(new)
        scores.append(0.0 if changed else 1.0)
    boxes = torch.tensor([m.box_xyxy for m in new_masks], dtype=torch.float32).reshape(-1, 4)
    keep = batched_nms(boxes, torch.tensor(scores), torch.zeros(len(boxes)), nms_thresh)
    data = Candidates(new_masks, boxes, data.iou, data.stability, data.points,
                      data.prompt_boxes, data.crop_boxes)
    return data.filter(keep)


def _clean(mask: CompactMask, min_area: int) -> tuple[CompactMask, bool]:
    if not mask.area:
        return mask, False
    y0, x0, _, _ = mask.bbox
    framed = np.pad(mask.crop(), 1)
    filled, holes = _fill_holes(framed, min_area)
    cleaned, islands = remove_small_regions(filled, min_area, mode="islands")
    if not (holes or islands):
        return mask, False
    return CompactMask.from_dense(cleaned, offset=(y0 - 1, x0 - 1), shape=mask.shape), True


def _fill_holes(framed: np.ndarray, min_area: int) -> tuple[np.ndarray, bool]:
    """Holes = background components not connected to the frame (the outside world)."""
    from scipy import ndimage

    regions, _ = ndimage.label(~framed, structure=np.ones((3, 3), bool))
    outside = regions[0, 0]
    sizes = np.bincount(regions.ravel())
    small = [i for i in range(1, len(sizes)) if i != outside and sizes[i] < min_area]
    if not small:
        return framed, False
    return framed | np.isin(regions, small), True

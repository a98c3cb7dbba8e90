"""Box utilities in plain torch (no torchvision here): IoU, NMS, boxes of masks.

Boxes are ``(N, 4)`` x0, y0, x1, y1.  Areas are ``(x1 - x0) * (y1 - y0)`` as in torchvision.
"""
from __future__ import annotations

import numpy as np
import torch


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, 4), (M, 4) -> (N, M) intersection over union."""
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter / union


def _pair_iou_above(a: np.ndarray, area_a: np.ndarray, b: np.ndarray, area_b: np.ndarray,
                    threshold: float) -> np.ndarray:
    """(Na, Nb) bool: IoU(a_i, b_j) > threshold with torchvision's float32 arithmetic
    (inter / (area_i + area_j - inter)), compared in float64 as torchvision does.
    numpy, not torch: these small blocks would pay torch's thread start-up on every call."""
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    iou = inter / (area_a[:, None] + area_b[None, :] - inter)
    return iou.astype(np.float64) > threshold


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
        max_keep: int | None = None, block: int = 256) -> torch.Tensor:
    """Exactly ``torchvision.ops.nms`` (stable descending sort, greedy, IoU > threshold
    suppresses), computed block by block: each block of sorted boxes is first checked
    against the boxes kept so far, then resolved greedily inside itself.  Stops once
    ``max_keep`` boxes are kept, so the cost is about O(kept * N), not O(N^2).

    boxes: (N, 4) x0, y0, x1, y1; scores: (N,).  Returns kept indices by decreasing score.
    """
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order].float().cpu().numpy()
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    kept: list[int] = []
    for start in range(0, len(b), block):
        blk, blk_area = b[start:start + block], area[start:start + block]
        alive = np.ones(len(blk), dtype=bool)
        if kept:
            alive &= ~_pair_iou_above(b[kept], area[kept], blk, blk_area, iou_threshold).any(0)
        inside = _pair_iou_above(blk, blk_area, blk, blk_area, iou_threshold)
        for i in np.flatnonzero(alive):
            if not alive[i]:  # suppressed by an earlier box of this block
                continue
            kept.append(start + int(i))
            if max_keep is not None and len(kept) >= max_keep:
                return order[torch.tensor(kept, dtype=torch.int64)]
            alive[i + 1:] &= ~inside[i, i + 1:]
    return order[torch.tensor(kept, dtype=torch.int64)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
    """NMS within each group id (the coordinate-offset trick of torchvision)."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.int64)
    offsets = groups.to(boxes) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool -> (N, 4) x0, y0, x1, y1 with *inclusive* max coordinates (SAM's
    ``batched_mask_to_box``); an empty mask gives [0, 0, 0, 0]."""
    if masks.numel() == 0:
        return torch.zeros(masks.shape[0], 4, dtype=torch.int64, device=masks.device)
    n, h, w = masks.shape
    rows = masks.any(dim=2)
    cols = masks.any(dim=1)
    y0, y1 = _first_last(rows, h)
    x0, x1 = _first_last(cols, w)
    boxes = torch.stack([x0, y0, x1, y1], dim=1)
    empty = ~rows.any(dim=1)
    boxes[empty] = 0
    return boxes


def _first_last(present: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.arange(length, device=present.device)
    last = torch.where(present, idx, -1).max(dim=1).values
    first = torch.where(present, idx, length).min(dim=1).values
    return first, last

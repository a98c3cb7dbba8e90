"""Box utilities in plain torch (no torchvision here): IoU, NMS, boxes of masks.

Boxes are ``(N, 4)`` x0, y0, x1, y1.  Areas are ``(x1 - x0) * (y1 - y0)`` as in torchvision.
"""
from __future__ import annotations

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


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
        max_keep: int | None = None, chunk: int = 512) -> torch.Tensor:
    """Greedy NMS as ``torchvision.ops.nms``: indices kept, by decreasing score.

    A box is suppressed when its IoU with a kept, higher-scoring box is *greater* than
    ``iou_threshold``.  IoUs are computed in row chunks so memory stays O(chunk * N);
    ``max_keep`` stops as soon as that many boxes are kept (YOLO's max_det).
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.int64)
    order = torch.sort(scores, descending=True, stable=True).indices
    boxes = boxes[order].float()
    n = len(boxes)
    suppressed = torch.zeros(n, dtype=torch.bool)
    keep = []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        iou = box_iou(boxes[start:stop], boxes)  # (chunk, N)
        for row in range(stop - start):
            i = start + row
            if suppressed[i]:
                continue
            keep.append(i)
            if max_keep is not None and len(keep) >= max_keep:
                return order[torch.tensor(keep, dtype=torch.int64)]
            later = iou[row, i + 1:] > iou_threshold
            suppressed[i + 1:] |= later
    return order[torch.tensor(keep, dtype=torch.int64)]


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

"""A column store of candidate masks (SAM's ``MaskData`` with compact masks)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .masks import CompactMask


@dataclass
class Candidates:
    """Parallel columns, one row per candidate mask, in original-image coordinates.

    boxes: (N, 4) float x0, y0, x1, y1 with inclusive max (from the mask).
    points: (N, 2) float64 x, y of the prompt point (NaN for box prompts).
    prompt_boxes: (N, 4) float x0, y0, x1, y1 of the prompt box (NaN for point prompts).
    crop_boxes: (N, 4) x0, y0, x1, y1 of the crop the mask was found in.
    """

    masks: list[CompactMask] = field(default_factory=list)
    boxes: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 4))
    iou: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    stability: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    prompt_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    crop_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))

    def __len__(self) -> int:
        return len(self.masks)

    def filter(self, keep) -> "Candidates":
        """Rows ``keep`` (indices or a bool mask), in that order."""
        keep = torch.as_tensor(keep)
        if keep.dtype == torch.bool:
            keep = torch.nonzero(keep).flatten()
        idx = keep.cpu().numpy()
        return Candidates(
            masks=[self.masks[i] for i in idx], boxes=self.boxes[keep], iou=self.iou[keep],
            stability=self.stability[keep], points=self.points[idx],
            prompt_boxes=self.prompt_boxes[idx], crop_boxes=self.crop_boxes[idx],
        )

    @staticmethod
    def concat(parts: list["Candidates"]) -> "Candidates":
        parts = [p for p in parts if len(p)]
        if not parts:
            return Candidates()
        return Candidates(
            masks=[m for p in parts for m in p.masks],
            boxes=torch.cat([p.boxes for p in parts]),
            iou=torch.cat([p.iou for p in parts]),
            stability=torch.cat([p.stability for p in parts]),
            points=np.concatenate([p.points for p in parts]),
            prompt_boxes=np.concatenate([p.prompt_boxes for p in parts]),
            crop_boxes=np.concatenate([p.crop_boxes for p in parts]),
        )

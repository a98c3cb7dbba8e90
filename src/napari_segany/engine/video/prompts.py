"""Checks of the video predictor's inputs, and frame pixels -> model-frame points.

Frame coordinates are x, y pixels (SAM convention); the model frame is the S x S stretched
frame: x / W * S, y / H * S in float32 (as the official ``normalize_coords=True``).
"""
from __future__ import annotations

import numbers

import numpy as np
import torch

from ...models.sam2.sam2 import BOX_CORNER_LABELS
from ..errors import PromptError


def check_frame(frame_idx, num_frames: int) -> int:
    """A valid frame index of a stack of ``num_frames`` (negative ones are refused)."""
    if not isinstance(frame_idx, numbers.Integral) or not 0 <= int(frame_idx) < num_frames:
        raise PromptError(f"frame_idx must be an integer in 0..{num_frames - 1}; got {frame_idx!r}.")
    return int(frame_idx)


def check_obj_id(obj_id) -> int:
    """Object ids are positive integers: they become label values."""
    if isinstance(obj_id, bool) or not isinstance(obj_id, numbers.Integral) or int(obj_id) < 1:
        raise PromptError(f"obj_id must be a positive integer (a label value); got {obj_id!r}.")
    return int(obj_id)


def check_mask(mask, height: int, width: int) -> torch.Tensor:
    """An (H, W) mask (bool or numbers, nonzero = object) -> (1, 1, H, W) float32 0/1."""
    mask = np.asarray(mask)
    if mask.shape != (height, width):
        raise PromptError(f"The mask must have the frame's shape ({height}, {width}); got {mask.shape}.")
    return torch.from_numpy(mask != 0).float()[None, None]


def _as_array(values, name: str, shape_hint: str, dtype) -> np.ndarray:
    try:
        return np.asarray(values, dtype=dtype)
    except (TypeError, ValueError):
        raise PromptError(f"{name} must be numbers of shape {shape_hint}; got {values!r}.") from None


def to_model_points(points, labels, box, height: int, width: int, size: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """User points (N, 2) x, y with labels (N,) (1 foreground, 0 background) and/or a box
    (x0, y0, x1, y1), in frame pixels -> ((1, M, 2) float32 model-frame points, (1, M) int
    labels); a box becomes two points labelled 2, 3 placed first."""
    if (points is None) != (labels is None):
        raise PromptError("Give points and labels together.")
    if points is None and box is None:
        raise PromptError("Give at least one point or a box.")
    coords = np.zeros((0, 2), np.float32)
    kinds = np.zeros((0,), np.int64)
    if points is not None:
        coords = _as_array(points, "points", "(N, 2)", np.float32).reshape(-1, 2)
        kinds = _as_array(labels, "labels", "(N,)", np.int64).reshape(-1)
        if len(kinds) != len(coords):
            raise PromptError(f"{len(coords)} points but {len(kinds)} labels.")
        if not np.isin(kinds, (0, 1)).all():
            raise PromptError("labels must be 1 (foreground) or 0 (background).")
    if box is not None:
        corners = _as_array(box, "box", "(4,) x0, y0, x1, y1", np.float32).reshape(-1)
        if corners.shape != (4,) or corners[2] < corners[0] or corners[3] < corners[1]:
            raise PromptError(f"box must be x0, y0, x1, y1 with x0 <= x1 and y0 <= y1; got {box!r}.")
        coords = np.concatenate([corners.reshape(2, 2), coords])
        kinds = np.concatenate([np.array(BOX_CORNER_LABELS, np.int64), kinds])
    inside = (np.isfinite(coords).all() and (coords >= 0).all()
              and (coords[:, 0] <= width).all() and (coords[:, 1] <= height).all())
    if not inside:
        raise PromptError(f"Points and boxes must lie in the frame (0..{width}, 0..{height}) "
                          "as x, y pixels.")
    scaled = torch.from_numpy(coords) / torch.tensor([width, height]) * size
    return scaled[None], torch.from_numpy(kinds)[None]

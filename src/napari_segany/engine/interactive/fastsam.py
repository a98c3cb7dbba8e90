"""FastSAM in the interactive widget: prompts *select* among FastSAM's masks.

FastSAM has no prompt decoder.  As the official ``FastSAMPrompt``, a slice is segmented once
(everything mode: one network pass, which takes the place of the image embedding and is cached
like one), then

* points pick masks: the union of the masks under positive points minus those under negative
  points, the smaller mask deciding where masks overlap (``FastSAMPrompt.point_prompt``);
* a box picks the mask with the highest IoU with it (``FastSAMPrompt.box_prompt``); points
  added to a box object then edit that mask with the point rule (our extension: the official
  code takes boxes and points separately).

There is one candidate per object and no mask prompt: :class:`FastSAMPredictor` implements
the promptable-predictor interface (:mod:`.protocol`), so the one
:class:`~.session.InteractiveSession` drives it.  Coordinates: x, y original pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..detection import FastSAMResult, fastsam_everything
from ..detection.fastsam import fastsam_point_prompt, select_by_box
from ..errors import PromptError
from .masks import BBox, crop_to_bbox


@dataclass(frozen=True)
class Selection:
    """The mask the prompts of one object select (full size), and its FastSAM score."""

    mask: np.ndarray  # (H, W) bool
    score: float

    @property
    def scores(self) -> np.ndarray:
        return np.array([self.score], dtype=np.float32)


class FastSAMPredictor:
    """A promptable predictor for FastSAM: :meth:`encode` runs FastSAM's everything pass (the
    slice's cache entry, a :class:`FastSAMResult`), prompts select among its masks."""

    def __init__(self, model, conf: float = 0.4, iou: float = 0.9, imgsz: int = 1024,
                 max_det: int = 300):
        self.model = model
        self.spec = model.spec
        self.params = {"conf": conf, "iou": iou, "imgsz": imgsz, "max_det": max_det}
        self.result: FastSAMResult | None = None
        self.original_size: tuple[int, int] | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def is_image_set(self) -> bool:
        return self.result is not None

    def encode(self, rgb: np.ndarray) -> FastSAMResult:
        """(H, W, 3) uint8 RGB -> every object FastSAM finds (the slice's cache entry)."""
        with torch.inference_mode():
            return fastsam_everything(rgb, self.model, **self.params)

    def set_embedding(self, result: FastSAMResult) -> None:
        """Select among the objects of ``result`` (what :meth:`encode` returned)."""
        self.result = result
        self.original_size = tuple(result.original_size)

    # --- the promptable-predictor interface ---------------------------------------------------
    def decode(self, point_coords=None, point_labels=None, box=None, multimask_output=True,
               previous=None, candidate: int = 0) -> Selection:
        """The selection of one object's prompts (one candidate; no refinement)."""
        has_points = point_coords is not None and len(point_coords) > 0
        mask = self.select(point_coords if has_points else None,
                           point_labels if has_points else None, box)
        return Selection(mask, self._score_of(mask))

    def mask(self, decoded: Selection, candidate: int = 0) -> tuple[BBox | None, np.ndarray]:
        return crop_to_bbox(decoded.mask)

    def select(self, points_xy, labels, box) -> np.ndarray:
        """(H, W) bool mask picked by the prompts (module docstring rule)."""
        if self.result is None:
            raise RuntimeError("No image is set: segment the slice first.")
        result = self.result
        if not len(result):
            raise PromptError("FastSAM found no objects on this slice: nothing to select. "
                              "Try a lower confidence, or a SAM-family model.")
        mask = None
        if box is not None:
            try:
                mask = result.mask(select_by_box(result, box))
            except ValueError as exc:
                raise PromptError(str(exc)) from None
        if points_xy is not None and len(points_xy):
            mask = fastsam_point_prompt(result, points_xy, labels, initial=mask)
        if mask is None:
            raise PromptError("Give at least one point or a box to segment.")
        return mask

    def _score_of(self, mask: np.ndarray) -> float:
        """The FastSAM score of the best-covered selected object (for display)."""
        result = self.result
        bbox, _ = crop_to_bbox(mask)
        if bbox is None:
            return 0.0
        r0, r1, c0, c1 = bbox
        best, score = 0, 0.0
        for i in range(len(result)):
            x0, y0, x1, y1 = result.crop_boxes[i]
            if x1 <= c0 or x0 >= c1 or y1 <= r0 or y0 >= r1:
                continue  # no overlap with the selection: skip unpacking its crop
            inside = int((result.crop(i) & mask[y0:y1, x0:x1]).sum())
            if inside > best:
                best, score = inside, float(result.scores[i])
        return score

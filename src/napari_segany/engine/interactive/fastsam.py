"""FastSAM in the interactive widget: prompts *select* among FastSAM's masks.

FastSAM has no prompt decoder.  As the official ``FastSAMPrompt``, a slice is segmented once
(everything mode: one network pass, which takes the place of the image embedding and is cached
like one), then

* points pick masks: the union of the masks under positive points minus those under negative
  points, the smaller mask deciding where masks overlap (``FastSAMPrompt.point_prompt``);
* a box picks the mask with the highest IoU with it (``FastSAMPrompt.box_prompt``); points
  added to a box object then edit that mask with the point rule (our extension: the official
  code takes boxes and points separately).

There is one candidate per object and no mask prompt.  Coordinates: x, y original pixels.
"""
from __future__ import annotations

import numpy as np
import torch

from ..detection import FastSAMResult, fastsam_everything
from ..detection.fastsam import fastsam_point_prompt, select_by_box
from ..errors import PromptError
from .masks import ObjectMask, crop_to_bbox
from .objects import ObjectPrompt
from .session import InteractiveSession, _ObjectState


class FastSAMPredictor:
    """The part of :class:`~.predictor.Predictor`'s interface the widget
    uses, for a FastSAM model: ``encode`` runs FastSAM's everything pass."""

    def __init__(self, model, conf: float = 0.4, iou: float = 0.9, imgsz: int = 1024,
                 max_det: int = 300):
        self.model = model
        self.spec = model.spec
        self.params = {"conf": conf, "iou": iou, "imgsz": imgsz, "max_det": max_det}
        self.features: FastSAMResult | None = None
        self.original_size: tuple[int, int] | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def is_image_set(self) -> bool:
        return self.features is not None

    def encode(self, rgb: np.ndarray) -> FastSAMResult:
        """(H, W, 3) uint8 RGB -> every object FastSAM finds (the slice's 'embedding')."""
        with torch.inference_mode():
            return fastsam_everything(rgb, self.model, **self.params)

    def set_embedding(self, features: FastSAMResult, original_size) -> None:
        self.features = features
        self.original_size = (int(original_size[0]), int(original_size[1]))

    def select(self, points_xy, labels, box) -> np.ndarray:
        """(H, W) bool mask picked by the prompts (module docstring rule)."""
        if self.features is None:
            raise RuntimeError("No image is set: segment the slice first.")
        result = self.features
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


class FastSAMSession(InteractiveSession):
    """Objects on one slice, each the FastSAM mask its prompts select (one candidate)."""

    def __init__(self, predictor: FastSAMPredictor):
        super().__init__(predictor, multimask=False, refine_with_mask=False)

    def _decode(self, prompt: ObjectPrompt, previous: _ObjectState | None) -> _ObjectState:
        has_points = len(prompt.labels) > 0
        mask = self.predictor.select(prompt.points_xy if has_points else None,
                                     prompt.labels if has_points else None, prompt.box)
        score = self._score_of(mask)
        state = _ObjectState(prompt, mask, np.array([score], dtype=np.float32))
        state.mask = self._upsample(state)
        return state

    def _upsample(self, state: _ObjectState) -> ObjectMask:
        bbox, crop = crop_to_bbox(state.low_res)  # low_res holds the full-size selection
        return ObjectMask(state.prompt.key, bbox, crop, float(state.scores[0]), 0, 1)

    def _score_of(self, mask: np.ndarray) -> float:
        """The FastSAM score of the best-covered selected object (for display)."""
        result = self.predictor.features
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

"""Prompts on one image: the predictors, the session of objects, and the commit rules.

* :mod:`.protocol`: :class:`PromptablePredictor`, the interface of every predictor below
  (and of the tiled one);
* :mod:`.predictor`: :class:`Predictor` (SamPredictor's interface for every promptable
  model), with :mod:`.transforms` (resize / normalise / pad, chosen by the spec) and
  :mod:`.prompts` (prompt checks; the one place napari (row, col) meets SAM (x, y));
* :mod:`.fastsam`: :class:`FastSAMPredictor`, prompts selecting among FastSAM's masks;
* :mod:`.objects`: clicks and boxes -> objects; :mod:`.session`: :class:`InteractiveSession`
  (decode what changed, refinement, candidates); :mod:`.masks`: masks as box + crop;
* :mod:`.commit`: which pixels a commit writes, new label ids, preview painting.
"""
from __future__ import annotations

from .commit import MaxLabelTracker, commit_mask, paint_preview
from .fastsam import FastSAMPredictor
from .masks import ObjectMask, crop_to_bbox
from .objects import ObjectPrompt, group_prompts
from .predictor import Logits, Predictor, returned_logits
from .protocol import Decoded, ImagePredictor, PromptablePredictor
from .prompts import box_to_rectangle, fit_prompts, rc_to_xy, rectangle_to_box, xy_to_rc
from .session import InteractiveSession
from .transforms import transform_for

__all__ = ["Decoded", "FastSAMPredictor", "ImagePredictor", "InteractiveSession", "Logits",
           "MaxLabelTracker", "ObjectMask", "ObjectPrompt", "Predictor", "PromptablePredictor",
           "box_to_rectangle", "commit_mask", "crop_to_bbox", "fit_prompts", "group_prompts",
           "paint_preview", "rc_to_xy", "rectangle_to_box", "returned_logits", "transform_for",
           "xy_to_rc"]

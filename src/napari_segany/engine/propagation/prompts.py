"""Propagation through a stack: prompts for the next slice, candidate choice, stop rules.

The prompts for slice ``i + 1`` come from the accepted mask of slice ``i`` (default
:class:`PromptOptions`):

* a **box**: the mask's bounding box, enlarged by ``box_margin`` of its side on each side
  (at least ``min_margin`` pixels), so an object that moves or grows a little stays inside;
* ``n_points`` **positive points** deep inside the mask: the pixel farthest from the mask's
  border first (the one most likely still inside the object on the next slice), then
  farthest-point samples among the pixels at least half as deep;
* the mask's **low-res logits as** ``mask_input`` where the model takes one (not EfficientSAM).

Only the mask's bounding-box crop is read (a distance transform of the crop, subsampled for
large objects), never the whole slice.

Stop rules (:class:`StopRules`): a slice is *rejected* and the walk stops when the predicted
IoU is below ``min_score``, when the area changes by more than ``max_area_ratio`` per step
(larger or smaller), or when the mask is empty.  Anisotropic stacks: the area factor is
defined per step of one XY pixel size; a slice ``a`` times thicker allows
``max_area_ratio ** a`` (see :func:`anisotropy`).

Coordinates: x, y pixels of the 2D slice for prompts (SAM convention); bounding boxes are
half-open (row0, row1, col0, col1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..interactive.masks import BBox

#: Why a slice was rejected (and its walk stopped); "ok" slices are kept.
LOW_SCORE, AREA_JUMP, EMPTY = "low_score", "area_jump", "empty"
MAX_EDT_SIDE = 128  # larger crops are subsampled for the distance transform (speed, not accuracy)


@dataclass(frozen=True)
class PromptOptions:
    """How the prompts of the next slice are derived from the previous mask (see module doc).

    ``multimask``: False decodes one mask (SAM's single-mask token, the right one for a box +
    points + mask prompt, and the cheapest); True decodes three candidates and keeps the one
    overlapping the previous mask best (compared at low resolution, only it is upsampled).
    """

    box_margin: float = 0.1
    min_margin: float = 2.0
    n_points: int = 1
    use_mask_input: bool = True
    multimask: bool = False

    def __post_init__(self):
        if self.box_margin < 0 or self.min_margin < 0:
            raise ValueError("box_margin and min_margin must be >= 0 (0 = the tight box).")
        if self.n_points < 0:
            raise ValueError(f"n_points must be >= 0; got {self.n_points}.")


@dataclass(frozen=True)
class StopRules:
    """When the object counts as lost. ``None`` switches a rule off.

    min_score: lowest predicted IoU (the model's own quality estimate) to accept a slice.
    max_area_ratio: largest area change per step of one XY pixel size (>= 1; 2.0 = the area
        may double or halve); a slice ``a`` pixel sizes thick allows ``max_area_ratio ** a``.
    min_area: masks with fewer pixels count as empty.
    stop_on_empty: False keeps walking past empty slices (an object out of focus for a
        frame): nothing is written there and the last non-empty mask prompts the next slice.
    """

    min_score: float | None = 0.7
    max_area_ratio: float | None = 2.0
    min_area: int = 1
    stop_on_empty: bool = True

    def __post_init__(self):
        if self.max_area_ratio is not None and not self.max_area_ratio >= 1:
            raise ValueError(f"max_area_ratio must be >= 1 (or None); got {self.max_area_ratio}.")
        if self.min_score is not None and not 0 <= self.min_score <= 1:
            raise ValueError(f"min_score is a predicted IoU in 0..1 (or None); got {self.min_score}.")


@dataclass(frozen=True)
class SlicePrompts:
    """Prompts of one slice in the Predictor's terms (x, y pixels)."""

    box: np.ndarray  # (4,) x0, y0, x1, y1
    points: np.ndarray | None  # (N, 2) x, y
    labels: np.ndarray | None  # (N,) 1
    mask_input: np.ndarray | None  # (h, w) low-res logits of the previous slice


def derive_prompts(bbox: BBox, crop: np.ndarray, low_res: np.ndarray | None,
                   slice_shape: tuple[int, int], options: PromptOptions,
                   supports_mask_input: bool) -> SlicePrompts:
    """Prompts for the next slice from the previous mask's ``crop`` at ``bbox``."""
    box = enlarged_box(bbox, slice_shape, options.box_margin, options.min_margin)
    points = labels = None
    if options.n_points:
        rc = inner_points(crop, options.n_points) + np.array([bbox[0], bbox[2]])
        points = rc[:, ::-1].astype(float)  # (row, col) -> (x, y)
        labels = np.ones(len(points), np.int64)
    mask_input = low_res if (options.use_mask_input and supports_mask_input) else None
    return SlicePrompts(box, points, labels, mask_input)


def enlarged_box(bbox: BBox, slice_shape: tuple[int, int], margin: float, min_margin: float
                 ) -> np.ndarray:
    """x0, y0, x1, y1 of a half-open bbox, grown by ``margin`` of each side, in the slice."""
    r0, r1, c0, c1 = bbox
    h, w = slice_shape
    dy = max(min_margin, margin * (r1 - r0))
    dx = max(min_margin, margin * (c1 - c0))
    # SAM's boxes span pixel indices (inclusive ends), as boxes made from masks in training.
    return np.array([max(0.0, c0 - dx), max(0.0, r0 - dy),
                     min(w - 1.0, c1 - 1 + dx), min(h - 1.0, r1 - 1 + dy)])


def inner_points(crop: np.ndarray, n: int) -> np.ndarray:
    """(n', 2) row, col of ``crop`` (bool) deep inside it: the deepest pixel, then spread out.

    n' <= n when the mask has fewer pixels.  Deterministic (ties go to the first pixel).
    """
    step = max(1, math.ceil(max(crop.shape) / MAX_EDT_SIDE))
    sub = crop[::step, ::step]
    if not sub.any():  # a thin object missed by the subsampling
        sub, step = crop, 1
    # Pad so that the crop's edge counts as outside: depth is distance to the mask's border.
    depth = ndimage.distance_transform_edt(np.pad(sub, 1))[1:-1, 1:-1]
    rows, cols = np.nonzero(depth >= 0.5 * depth.max())
    deep = np.stack([rows, cols], axis=1)
    chosen = [int(np.argmax(depth[rows, cols]))]
    nearest = np.full(len(deep), np.inf)
    for _ in range(1, min(n, len(deep))):
        nearest = np.minimum(nearest, ((deep - deep[chosen[-1]]) ** 2).sum(1))
        if nearest.max() == 0:
            break
        chosen.append(int(np.argmax(nearest)))
    return deep[chosen] * step


def choose_candidate(low_res: np.ndarray, scores: np.ndarray, previous: np.ndarray | None) -> int:
    """Index of the candidate (of (M, h, w) logits) to keep: best low-res IoU with the
    previous slice's low-res mask (``previous`` logits), ties and first slices by score."""
    if len(scores) == 1 or previous is None:
        return int(np.argmax(scores))
    was = previous > 0
    now = low_res > 0
    inter = (now & was).sum((1, 2))
    union = (now | was).sum((1, 2))
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return int(np.argmax(iou + 1e-3 * np.asarray(scores)))


def anisotropy(scale, axis: int) -> float:
    """Slice spacing along ``axis`` in units of the XY pixel size (geometric mean of Y, X).

    ``scale`` is napari's layer scale of the spatial axes (..., Y, X); None gives 1.
    """
    if scale is None:
        return 1.0
    scale = np.abs(np.asarray(scale, dtype=float))
    if scale.ndim != 1 or len(scale) < 3 or not np.isfinite(scale).all() or (scale == 0).any():
        raise ValueError(f"scale must give one positive spacing per spatial axis (..., Y, X); "
                         f"got {scale.tolist()}.")
    return float(scale[axis] / math.sqrt(scale[-2] * scale[-1]))


def rejection(score: float, area: int, previous_area: int | None, rules: StopRules,
              steps: float = 1.0) -> tuple[str | None, float]:
    """(reason or None, area ratio) for a decoded slice; ``steps``: its anisotropy."""
    ratio = area / previous_area if previous_area else float("nan")
    if area < max(1, rules.min_area):
        return EMPTY, ratio
    if rules.min_score is not None and score < rules.min_score:
        return LOW_SCORE, ratio
    if rules.max_area_ratio is not None and previous_area:
        allowed = rules.max_area_ratio ** steps
        if max(ratio, 1 / ratio) > allowed:
            return AREA_JUMP, ratio
    return None, ratio

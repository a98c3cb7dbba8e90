"""The kept mask of a slice at full size, computed only where it can be non-empty.

SAM's post-processing (:class:`.transforms.LongestSideTransform`) upsamples the (h, w)
low-res logits bilinearly to S x S, crops the padding, and resizes bilinearly to the
original (H, W).  Both steps are separable linear maps with non-negative weights, so the
result is ``R @ low_res @ C.T`` with (H, h) and (W, w) matrices holding at most 4 weights
per row, and an output pixel can only exceed the threshold if one of the low-res logits it
is made of does.  So only the rows and columns fed by low-res pixels above the threshold
are computed, each as a weighted sum of <= 4 inputs: the same mask as
:meth:`.predictor.Predictor.upsample` (up to float rounding of logits within ~1e-5 of the
threshold), at a cost proportional to the object's bounding box instead of the image
(no 1024 x 1024 intermediate), which is what a per-slice budget of tens of ms needs.

Other transforms (EfficientSAM's bicubic) and stand-in predictors use ``upsample``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ..interactive import crop_to_bbox
from ..interactive.masks import BBox
from ..interactive.transforms import LongestSideTransform

BIG_WINDOW = 0.25  # above this fraction of the image, torch's full upsampling is faster


def mask_crop(predictor, low_res: torch.Tensor) -> tuple[BBox | None, np.ndarray]:
    """(bbox, bool crop) of the mask of (1, 1, h, w) low-res logits on the current image."""
    transform = getattr(predictor, "transform", None)
    if type(transform) is not LongestSideTransform:
        return crop_to_bbox(predictor.upsample(low_res)[0, 0].cpu().numpy())
    logits = low_res[0, 0].float().cpu().numpy()
    threshold = float(predictor.model.mask_threshold)
    above = logits > threshold
    rows, cols = _operators(logits.shape, transform.target_length, tuple(predictor.input_size),
                            tuple(predictor.original_size))
    row_band, col_band = _fed(rows, above.any(axis=1)), _fed(cols, above.any(axis=0))
    if row_band is None or col_band is None:  # nothing, or only the padding, is above
        return None, np.zeros((0, 0), bool)
    height, width = predictor.original_size
    if (row_band[1] - row_band[0]) * (col_band[1] - col_band[0]) > BIG_WINDOW * height * width:
        return crop_to_bbox(predictor.upsample(low_res)[0, 0].cpu().numpy())  # torch is faster
    window = _apply(rows, cols, row_band, col_band, logits)
    bbox, crop = crop_to_bbox(window > threshold)
    if bbox is None:
        return None, crop
    r0, c0 = row_band[0], col_band[0]
    return (bbox[0] + r0, bbox[1] + r0, bbox[2] + c0, bbox[3] + c0), crop


def _fed(operator, hot: np.ndarray) -> tuple[int, int] | None:
    """The output range [o0, o1) that reads any of the ``hot`` inputs."""
    index, weight = operator
    fed = np.flatnonzero(((weight > 0) & hot[index]).any(axis=1))
    return None if fed.size == 0 else (int(fed[0]), int(fed[-1]) + 1)


def _apply(rows, cols, row_band, col_band, logits: np.ndarray) -> np.ndarray:
    """Both passes on the window only: each output is a weighted sum of <= 4 inputs."""
    ri, rw = (a[row_band[0]:row_band[1]] for a in rows)
    ci, cw = (a[col_band[0]:col_band[1]] for a in cols)
    b0 = int(ci.min())
    sub = logits[:, b0:int(ci.max()) + 1]
    half = sum(rw[:, k, None] * sub[ri[:, k]] for k in range(ri.shape[1]))  # (rows, band)
    return sum(half[:, ci[:, k] - b0] * cw[None, :, k] for k in range(ci.shape[1]))


@lru_cache(maxsize=8)
def _operators(low_shape: tuple[int, int], side: int, input_size: tuple[int, int],
               original_size: tuple[int, int]):
    """Per axis (rows, then columns), the composite of the two bilinear steps as
    (index (n_out, K), weight (n_out, K)) with K <= 4 inputs per output (float32)."""
    ops = []
    for n_low, n_in, n_out in zip(low_shape, input_size, original_size):
        first = bilinear_matrix(n_low, side)[:n_in]  # to S, then crop the padding
        second = np.eye(n_in) if n_in == n_out else bilinear_matrix(n_in, n_out)
        ops.append(_sparse(second @ first))
    return ops[0], ops[1]


def _sparse(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = int((matrix != 0).sum(axis=1).max())
    index = np.argsort(matrix == 0, axis=1, kind="stable")[:, :k]  # the non-zeros first
    weight = np.take_along_axis(matrix, index, axis=1)
    return index, weight.astype(np.float32)


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of torch's bilinear resize (align_corners=False, no antialias)."""
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = np.minimum(src - i0, 1.0)
    matrix = np.zeros((n_out, n_in))
    np.add.at(matrix, (np.arange(n_out), i0), 1.0 - w1)
    np.add.at(matrix, (np.arange(n_out), i1), w1)
    return matrix

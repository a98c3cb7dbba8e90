"""The thresholded mask of low-res logits, upsampled only where it can be positive.

The full path (``transform.postprocess_masks``, then ``> threshold``) interpolates every pixel
of the image (1024^2 and more) although a click's mask covers a few percent of it.  Here the
low-res cells that can make an output pixel positive bound the region; the resampling runs
on a crop of the low-res logits around it and gives **the same bits** as the full path:

* the crop's geometry is the full call's.  PyTorch computes an output pixel's source
  coordinate as ``scale * (dst + 0.5) - 0.5`` in float32, with ``scale = in / out``.  When
  that scale is a power of two (256 -> 1024, 1024 -> 512, ...) this arithmetic is exact, so a
  crop whose input and output start on matching cells reproduces the weights and taps of the
  full call; other scales round differently at another offset, and use the full path.
* output pixels near a crop edge inside the image read clamped taps: the crop has a margin
  of ``_MARGIN`` low-res cells, more than bicubic's reach (2), and only pixels whose taps lie
  in the crop are kept.
* which output pixels can be positive: bilinear weights are >= 0, so a pixel > 0 has a tap
  > 0.  Bicubic (EfficientSAM) has negative weights (at most 0.445 in sum over the 4 x 4
  taps, for A = -0.75), so a pixel whose taps are all <= 0 is still <= max + 0.445 (max - min);
  the region is bounded with 0.6 to stay above float rounding.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .masks import BBox, crop_to_bbox

_MARGIN = 3  # low-res cells around the crop: bicubic reads 2 beyond its cell
_CUBIC_NEGATIVE_BOUND = 0.6  # > 0.445, the largest sum of |negative| bicubic weights


def region_mask(low_res: torch.Tensor, steps, threshold: float
                ) -> tuple[BBox | None, np.ndarray] | None:
    """(h, w) low-res logits -> (bbox, bool crop) of ``logits > threshold`` after ``steps``.

    ``steps``: ``(mode, out_size, keep)`` of a one-interpolation upsampling (see
    ``transform.upsample_steps``): interpolate to ``out_size`` (H, W), keep ``[:kh, :kw]``.
    None when the crop cannot reproduce the full path (a scale that is not a power of two,
    a threshold other than 0); the caller then upsamples everything."""
    mode, out_size, keep = steps
    in_size = tuple(low_res.shape[-2:])
    if threshold != 0 or not all(_power_of_two_scale(i, o) for i, o in zip(in_size, out_size)):
        return None
    cells = _candidate_cells(low_res.float(), mode)
    if cells is None:
        return None, np.zeros((0, 0), bool)
    rows = _axis_plan(*cells[0], in_size[0], out_size[0], keep[0])
    cols = _axis_plan(*cells[1], in_size[1], out_size[1], keep[1])
    if rows is None or cols is None:
        return None, np.zeros((0, 0), bool)
    crop = low_res[..., rows.in0:rows.in1, cols.in0:cols.in1].float().reshape(
        1, 1, rows.in1 - rows.in0, cols.in1 - cols.in0)
    with torch.inference_mode():
        out = F.interpolate(crop, (rows.out1 - rows.out0, cols.out1 - cols.out0), mode=mode,
                            align_corners=False)
    kept = out[0, 0, rows.keep0 - rows.out0:rows.keep1 - rows.out0,
               cols.keep0 - cols.out0:cols.keep1 - cols.out0] > threshold
    bbox, mask = crop_to_bbox(kept.numpy())
    if bbox is None:
        return None, mask
    r0, r1, c0, c1 = bbox
    return (r0 + rows.keep0, r1 + rows.keep0, c0 + cols.keep0, c1 + cols.keep0), mask


def _power_of_two_scale(size_in: int, size_out: int) -> bool:
    """True when in / out is 2^k (k of either sign): float32 source coordinates are exact."""
    big, small = max(size_in, size_out), min(size_in, size_out)
    ratio = big // small
    return big % small == 0 and ratio & (ratio - 1) == 0 and size_out < 2 ** 22


def _candidate_cells(low_res: torch.Tensor, mode: str):
    """((first, last) rows, (first, last) cols) of the low-res cells ``i0`` (the first tap of
    an output pixel) from which an output pixel can be > 0; None if there are none."""
    x = low_res.reshape(low_res.shape[-2:]).numpy()
    # numpy's shifted maxima: torch's stride-1 max_pool2d costs more than the whole crop
    if mode == "bilinear":  # taps i0, i0 + 1
        possible = _window(x, 0, 1, np.maximum) > 0
    else:  # bicubic: taps i0 - 1 .. i0 + 2
        hi, lo = _window(x, 1, 2, np.maximum), _window(x, 1, 2, np.minimum)
        possible = hi + _CUBIC_NEGATIVE_BOUND * (hi - lo) > 0
    rows = np.flatnonzero(possible.any(1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(possible.any(0))
    return (int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1]))


def _window(x: np.ndarray, before: int, after: int, op) -> np.ndarray:
    """``op`` over the cells [i - before, i + after] x [j - before, j + after], the image's
    edge cells repeated beyond it (as the interpolation clamps its taps)."""
    padded = np.pad(x, (before, after), mode="edge")
    h, w = x.shape
    rows = padded[:h]
    for k in range(1, before + after + 1):
        rows = op(rows, padded[k:k + h])
    out = rows[:, :w]
    for k in range(1, before + after + 1):
        out = op(out, rows[:, k:k + w])
    return out


class _Axis:
    """One axis of the crop: its low-res cells [in0, in1), its output pixels [out0, out1),
    and the output pixels kept [keep0, keep1) (those that can be positive)."""

    def __init__(self, in0, in1, out0, out1, keep0, keep1):
        self.in0, self.in1, self.out0, self.out1 = in0, in1, out0, out1
        self.keep0, self.keep1 = keep0, keep1


def _axis_plan(first: int, last: int, size_in: int, size_out: int, keep: int) -> _Axis | None:
    """The crop along one axis for output pixels whose first tap is in [first, last]."""
    scale = size_in / size_out
    # output o has source (o + 0.5) * scale - 0.5, first tap floor(source); the first
    # pixels have a negative source (bilinear clamps it to 0; bicubic's taps from -1 are
    # clamped onto cells 0..2, within cell 0's window): they belong to cell 0
    lo = 0 if first == 0 else max(0, math.floor((first + 0.5) / scale - 0.5) - 1)
    hi = min(size_out, keep, math.ceil((last + 1.5) / scale - 0.5) + 1)
    if hi <= lo:
        return None
    # crop edges on cells where input and output grids meet, with a margin for the taps
    # (a downsampling output pixel spans ``scale`` cells)
    unit_in, unit_out = (1, round(1 / scale)) if scale < 1 else (round(scale), 1)
    margin = _MARGIN + math.ceil(scale)
    in0 = max(0, (math.floor(lo * scale) - margin) // unit_in * unit_in)
    in1 = min(size_in, -(-(math.ceil(hi * scale) + margin) // unit_in) * unit_in)
    out0, out1 = in0 * unit_out // unit_in, min(size_out, in1 * unit_out // unit_in)
    return _Axis(in0, in1, out0, out1, max(lo, out0), min(hi, out1))

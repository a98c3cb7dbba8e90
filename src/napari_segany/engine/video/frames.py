"""Frames of a stack or movie as SAM 2 model inputs, made one at a time on demand.

The caller's (T, H, W) or (T, H, W, C) array is kept by reference (a numpy array, a memmap,
a zarr or dask array, or any object with ``shape``, ``dtype`` and ``frames[t]``: read frame by
frame); nothing of size T is copied.

Intensities, the same rule as single images (engine/images/intensity.py) but for the *whole*
stack, so that a frame's contrast does not change with its content: uint8 as is, bool as
0/255, any other dtype stretched between ``contrast_limits`` or the 0.5/99.5 percentiles of
(up to 16 evenly spaced frames of) the stack; 1 channel is copied to RGB, alpha dropped.

Resizing, as the official video predictor (sam2 1.1.0 ``load_video_frames``): PIL's
default (bicubic) resize of the uint8 RGB frame straight to S x S (aspect not kept), then
``/ 255`` in float64, float32, ImageNet mean/std.  Those steps map each uint8 value of a
channel to one float32, so a (3, 256) table of their results gives the same values without
a float64 image or a transposed copy.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..errors import ImageError
from ..images.intensity import to_uint8_rgb

PERCENTILES = (0.5, 99.5)
PERCENTILE_SAMPLE_FRAMES = 16


def _is_array_like(frames) -> bool:
    """Arrays read lazily, frame by frame (numpy, zarr, dask, views of a larger volume)."""
    return all(hasattr(frames, name) for name in ("shape", "dtype", "__getitem__"))


def _check_stack(frames):
    frames = frames if _is_array_like(frames) else np.asarray(frames)
    ndim = len(frames.shape)
    if ndim not in (3, 4) or (ndim == 4 and frames.shape[-1] not in (1, 3, 4)):
        raise ImageError(
            f"Expected frames of shape (T, H, W) or (T, H, W, C) with C = 1, 3 or 4; got "
            f"{frames.shape}. Move the channel axis last and the time or z axis first.")
    if frames.shape[0] < 1 or frames.shape[1] < 2 or frames.shape[2] < 2:
        raise ImageError(f"The stack {frames.shape} is empty or its frames are under 2x2 pixels.")
    if np.dtype(frames.dtype).kind not in "biuf":
        raise ImageError(f"Unsupported pixel type {frames.dtype}: use integer, float or bool frames.")
    return frames


class FrameSource:
    """Model inputs of the frames of one stack.  Sizes: ``num_frames``, ``height``, ``width``
    (H, W of a frame = napari rows, columns)."""

    def __init__(self, frames, image_size: int, pixel_mean, pixel_std,
                 contrast_limits: tuple[float, float] | None = None) -> None:
        self.frames = _check_stack(frames)
        self.num_frames, self.height, self.width = (int(n) for n in self.frames.shape[:3])
        self.image_size = int(image_size)
        self.mean = np.asarray(pixel_mean, dtype=np.float32)
        self.std = np.asarray(pixel_std, dtype=np.float32)
        unit = (np.arange(256) / 255.0).astype(np.float32)  # float64 division, as the official
        self._table = (unit[None, :] - self.mean[:, None]) / self.std[:, None]  # (3, 256) float32
        self.limits = self._limits(contrast_limits)

    def _limits(self, contrast_limits) -> tuple[float, float] | None:
        """(lo, hi) of the intensity stretch, or None for uint8/bool stacks."""
        if contrast_limits is not None:
            lo, hi = (float(v) for v in contrast_limits)
        elif np.dtype(self.frames.dtype) in (np.uint8, np.bool_):
            return None
        else:
            picks = np.unique(np.linspace(0, self.num_frames - 1, PERCENTILE_SAMPLE_FRAMES).round())
            sample = np.stack([np.asarray(self.frames[int(t)]) for t in picks])
            if sample.dtype.kind == "f" and not np.isfinite(sample).all():
                raise ImageError("The frames contain NaN or infinite values: replace them first.")
            lo, hi = (float(v) for v in np.percentile(sample, PERCENTILES))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ImageError(f"Contrast limits must be finite numbers; got ({lo}, {hi}).")
        return lo, hi

    def rgb(self, t: int) -> np.ndarray:
        """Frame ``t`` as (H, W, 3) uint8 RGB (the stack-wide limits, the single-image rule)."""
        return to_uint8_rgb(np.asarray(self.frames[t]), self.limits)

    def model_input(self, t: int, device=None) -> torch.Tensor:
        """Frame ``t`` -> (1, 3, S, S) float32 normalised model input."""
        s = self.image_size
        resized = np.array(Image.fromarray(self.rgb(t)).resize((s, s), Image.BICUBIC))
        x = np.empty((3, s, s), np.float32)
        for c in range(3):
            np.take(self._table[c], resized[..., c], out=x[c])
        out = torch.from_numpy(x)[None]
        return out.to(device) if device is not None else out

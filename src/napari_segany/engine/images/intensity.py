"""Turning any 2D microscopy image into the uint8 RGB picture the models were trained on.

Rule (documented in docs/user-guide.md):

* uint8 with 3 channels: used as is (SAM's own preprocessing applies unchanged);
* 4 channels (RGBA): alpha dropped; 1 channel or no channel axis: copied to R, G and B;
* ``contrast_limits=(lo, hi)`` given (the GUI passes the layer's): ``(x - lo) / (hi - lo)``
  clipped to 0..1, times 255, rounded, so the model sees what the user sees;
* otherwise uint8 and bool images keep their values (bool -> 0/255) and every other dtype is
  stretched between its 0.5th and 99.5th percentiles (robust to hot pixels), computed on the
  whole 2D image over all channels.
"""
from __future__ import annotations

import numpy as np

from ..errors import ImageError

DEFAULT_PERCENTILES = (0.5, 99.5)


def validate_image(image) -> np.ndarray:
    """Check shape and values of one 2D image (H, W[, C]); return it as an ndarray."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 3, 4)):
        raise ImageError(
            f"Expected one 2D image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got "
            f"shape {image.shape}. Pick one slice of a stack (the GUI uses the shown slice) "
            "or move the channel axis last."
        )
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ImageError(f"The image is {image.shape[0]}x{image.shape[1]} pixels: need at least 2x2.")
    if image.dtype.kind not in "biuf":
        raise ImageError(f"Unsupported pixel type {image.dtype}: use an integer, float or bool image.")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise ImageError("The image contains NaN or infinite values: replace them (e.g. np.nan_to_num) first.")
    return image


def to_uint8_rgb(image, contrast_limits: tuple[float, float] | None = None,
                 percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> np.ndarray:
    """Map a 2D image of any dtype to (H, W, 3) uint8 RGB following the module's rule."""
    image = validate_image(image)
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if contrast_limits is not None:
        lo, hi = (float(v) for v in contrast_limits)
        scaled = _stretch(image, lo, hi)
    elif image.dtype == np.uint8:
        scaled = image
    elif image.dtype == np.bool_:
        scaled = image.astype(np.uint8) * np.uint8(255)
    else:
        lo, hi = np.percentile(image, percentiles)
        scaled = _stretch(image, float(lo), float(hi))
    if scaled.ndim == 2:
        scaled = scaled[..., None]
    if scaled.shape[-1] == 1:
        scaled = np.repeat(scaled, 3, axis=-1)
    return np.ascontiguousarray(scaled)


def _stretch(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ImageError(f"Contrast limits must be finite numbers; got ({lo}, {hi}).")
    if hi <= lo:  # a flat image: everything maps to black rather than dividing by zero
        return np.zeros(image.shape, np.uint8)
    out = (image.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def auto_contrast(image, max_pixels: int = 4_000_000) -> tuple[float, float] | None:
    """The automatic mapping of a large image, shared by all its windows: None for uint8 and
    bool (used as is), else the 0.5/99.5 percentiles of about ``max_pixels`` sampled pixels."""
    if image.dtype in (np.uint8, np.bool_):
        return None
    step = max(1, int(np.sqrt(image.shape[0] * image.shape[1] / max_pixels)))
    sample = np.asarray(image[::step, ::step])
    lo, hi = np.percentile(sample, DEFAULT_PERCENTILES)
    return float(lo), float(hi)

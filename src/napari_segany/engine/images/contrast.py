"""One intensity mapping per file (stack), read plane by plane: the rules of the commands.

* :func:`stack_contrast`: ``napari-segany everything`` / ``batch everything``: the 0.5 / 99.5
  percentiles of about 4 M pixels sampled over the whole file, shared by all its planes (a
  dim slice of a stack is not stretched into noise); None for uint8 and bool;
* :func:`napari_contrast_limits`: ``napari-segany embed`` / ``batch embed``: napari's default
  contrast limits of a layer holding the file, so that the widget finds the stored embeddings.

Both take any array of shape (*leading, H, W[, C]) whose ``image[index]`` for a leading index
tuple returns that plane (numpy, memmap, zarr, the lazy images of :mod:`..batch`): a file on
disk is read one plane at a time, and the result equals the rule applied to the whole array.
"""
from __future__ import annotations

import numpy as np

SAMPLE_PIXELS = 4_000_000  # about this many values decide a file's percentiles
NAPARI_FULL_RANGE_SIZE = 1e7  # napari reads the whole range of arrays up to this many values


def _planes(image, leading: tuple[int, ...]):
    """``image[index]`` for every leading index, in row-major order (one plane: the array)."""
    if not leading:
        yield np.asarray(image[()] if hasattr(image, "__getitem__") else image)
        return
    for index in np.ndindex(*leading):
        yield np.asarray(image[tuple(int(i) for i in index)])


def stack_contrast(image, leading: tuple[int, ...] | None = None) -> tuple[float, float] | None:
    """(lo, hi): the 0.5 / 99.5 percentiles of every ``step``-th value of the flattened file
    (``step = size // 4 M``), NaN and infinities left out; None for uint8 / bool or when no
    finite value is left.  ``leading``: the slice axes (default: ``plane_layout``'s)."""
    if np.dtype(image.dtype) in (np.uint8, np.bool_):
        return None
    if leading is None:
        from .io import plane_layout

        leading = plane_layout(image.shape).leading
    size = int(np.prod(image.shape))
    step = max(1, size // SAMPLE_PIXELS)
    samples, offset = [], 0
    for plane in _planes(image, tuple(leading)):
        flat = plane.reshape(-1)
        samples.append(flat[(-offset) % step::step])  # the global flat[::step], plane by plane
        offset += flat.size
    sample = np.concatenate(samples)
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]  # NaN planes are refused later, plane by plane
    if not sample.size:
        return None
    lo, hi = np.percentile(sample, (0.5, 99.5))
    return float(lo), float(hi)


def napari_contrast_limits(data, rgb: bool) -> tuple[float, float]:
    """napari's default contrast limits of a layer holding ``data`` (layer_utils.calc_data_range,
    reproduced without importing napari): 0..255 for uint8, else the data range (for arrays
    over 1e7 values: the range of the first, middle and last planes, or of 62 x 62 central
    patches of them when the planes are large)."""
    if np.dtype(data.dtype) == np.uint8:
        return 0.0, 255.0
    shape = tuple(int(s) for s in data.shape)
    offset = 2 + int(rgb)
    lead = shape[:-offset] if len(shape) >= offset else ()
    if len(shape) < 3 or np.prod(shape) <= NAPARI_FULL_RANGE_SIZE:
        lo, hi = _finite_range(_planes(data, lead))
    else:
        idxs = [(0,) * len(lead), tuple(s // 2 for s in lead), tuple(s - 1 for s in lead)]
        plane = shape[-offset:]
        if np.prod(plane) > NAPARI_FULL_RANGE_SIZE and plane[0] > 64 and plane[1] > 64:
            cy, cx = plane[0] // 2, plane[1] // 2
            patch = (slice(cy - 31, cy + 31), slice(cx - 31, cx + 31))
            reduced = [np.asarray(data[idx])[patch] for idx in idxs]
        else:
            reduced = [np.asarray(data[idx]) for idx in idxs]
        lo = min(_finite(r, np.min) for r in reduced)
        hi = max(_finite(r, np.max) for r in reduced)
    if lo == hi:
        lo, hi = min(lo, 0), max(hi, 1)
    return float(lo), float(hi)


def _finite_range(planes) -> tuple[float, float]:
    """min / max over all planes as napari takes them of the whole array: over the finite
    values when there are non-finite ones, 0 when there is no finite value at all."""
    lo = hi = None
    for plane in planes:
        finite = plane if plane.dtype.kind != "f" else plane[np.isfinite(plane)]
        if finite.size:
            lo = finite.min() if lo is None else min(lo, finite.min())
            hi = finite.max() if hi is None else max(hi, finite.max())
    return (0, 0) if lo is None else (lo, hi)


def _finite(array, reduce):
    value = reduce(array)
    if not np.isfinite(value):
        finite = array[np.isfinite(array)]
        return reduce(finite) if finite.size else 0
    return value

"""Reading and writing for the Image Series dock, as jobs for napari workers.

* :func:`load_job`: one image of an :class:`ImageSeries` with what showing it needs, all
  computed off the main thread: its pixels, its display range and contrast limits (the
  limits the Segment Anything dock will embed it with), and its saved labels (uint32, or
  None);
* :func:`save_job`: the labels of an image written as its TIFF when they hold an object, or
  when a TIFF exists already (an image cleared by the user is saved cleared); ``force``
  writes empty labels too ("Save now": an image with no object is done as well).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...engine.images.intensity import DEFAULT_PERCENTILES
from ...engine.progress import Progress
from ...engine.workflows.series import ImageSeries

LABELS_DTYPE = np.uint32  # what the Segment Anything dock's new Labels layers hold
SAMPLED_PIXELS = 4_000_000  # for the contrast limits of a large image


@dataclass
class LoadedImage:
    """An image of the series, ready to show; ``labels`` are updated when it is left."""

    index: int
    pixels: np.ndarray
    rgb: bool
    data_range: tuple[float, float]
    limits: tuple[float, float]
    labels: np.ndarray | None
    note: str = ""  # a problem with its saved labels, said when it is shown

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.pixels.shape[:-1] if self.rgb else self.pixels.shape)

    def labels_or_empty(self) -> np.ndarray:
        return self.labels if self.labels is not None else np.zeros(self.spatial_shape, LABELS_DTYPE)


def load_job(series: ImageSeries, index: int):
    """Returns a :class:`LoadedImage`; ImageError (recorded in ``series.bad``) for a file
    that cannot be read."""
    name = series.images[index].name
    yield Progress(0, 2, f"reading {name}")
    pixels = series.load_image(index)
    rgb = pixels.ndim == 3 and pixels.shape[-1] in (3, 4)
    yield Progress(1, 2, f"reading the labels of {name}")
    labels, note = _saved_labels(series, index, pixels.shape[:-1] if rgb else pixels.shape)
    data_range, limits = display_limits(pixels)
    return LoadedImage(index, pixels, rgb, data_range, limits, labels, note)


def save_job(series: ImageSeries, index: int, labels: np.ndarray, force: bool = False):
    """Returns the TIFF's path, or None when there was nothing to save."""
    yield Progress(0, 1, f"saving the labels of {series.images[index].name}")
    if not force and not series.is_done(index) and not np.any(labels):
        return None
    return series.save_labels(index, labels)


def _saved_labels(series: ImageSeries, index: int, shape) -> tuple[np.ndarray | None, str]:
    labels = series.load_labels(index)
    if labels is None:
        return None, ""
    if tuple(labels.shape) != tuple(shape):
        return None, (f"The saved labels {series.labels_path(index).name} have shape "
                      f"{labels.shape}, the image {tuple(shape)}: they are not shown, and are "
                      "replaced when you annotate this image.")
    return labels.astype(LABELS_DTYPE, copy=False), ""


def display_limits(pixels: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """(data range, contrast limits) to show ``pixels`` with: uint8 and bool as they are;
    otherwise the engine's automatic contrast (0.5 / 99.5 percentiles, robust to hot
    pixels) of about four million sampled pixels, within their min / max."""
    if pixels.dtype in (np.uint8, np.bool_):
        top = 255.0 if pixels.dtype == np.uint8 else 1.0
        return (0.0, top), (0.0, top)
    values = pixels.reshape(-1)[:: max(1, pixels.size // SAMPLED_PIXELS)]
    lo, hi = (float(v) for v in np.percentile(values, DEFAULT_PERCENTILES))
    low, high = float(values.min()), float(values.max())
    if hi <= lo:  # a flat image
        lo, hi = low, max(high, low + 1.0)
    return (min(low, lo), max(high, hi)), (lo, hi)

"""The axes a propagation walks: their names, their spacing, and world <-> slice index.

Names come from the image layer's ``axis_labels`` (z, t, ...); napari's unnamed defaults
("-3", "-2", ...) are named by the usual layout: Z of Z, Y, X; T and Z of T, Z, Y, X.  A
range is given in world units along the axis (``scale`` and ``translate`` of the image
layer; rotations and shears are not taken into account).

Scale and the area stop rule: when the walked axis has the same kind of unit as Y and X
(length or pixels, and is not a time axis), a slice counts as ``scale[axis] / XY pixel
size`` steps of the area rule (``StopRules.max_area_ratio``); for a time axis one frame is
one step.
"""
from __future__ import annotations

import numpy as np

from ...engine.images import to_uint8_rgb
from ...engine.propagation import SliceStack
from ...engine.propagation.prompts import anisotropy
from ..shared.image_slice import ImageSource

TIME_LABELS = ("t", "time", "frame", "frames")
#: Names of the leading axes of an image whose axes napari left unnamed, by their number.
CONVENTIONAL = {1: ("z",), 2: ("t", "z")}


def axis_labels(source: ImageSource) -> list[str]:
    """One name per spatial axis (the leading ones first, then Y, X)."""
    labels = list(getattr(source.layer, "axis_labels", []) or [])
    labels = labels[1:] if source.channel_first else labels
    n = len(source.spatial_shape)
    if len(labels) != n or all(label.lstrip("-").isdigit() for label in labels):
        leading = CONVENTIONAL.get(n - 2, tuple(f"axis {i}" for i in range(n - 2)))
        labels = [*leading, "y", "x"]
    return labels


def is_time(source: ImageSource, axis: int) -> bool:
    return axis_labels(source)[axis].lower() in TIME_LABELS


def _spatial_units(source: ImageSource) -> list:
    units = list(getattr(source.layer, "units", []) or [])
    return units[1:] if source.channel_first else units


def steps(source: ImageSource, axis: int) -> float:
    """Slice spacing in XY pixel sizes for a spatial axis; 1 for a time axis."""
    units = _spatial_units(source)
    spatial = not is_time(source, axis)
    if len(units) == len(source.spatial_shape):
        spatial = spatial and units[axis].dimensionality == units[-1].dimensionality
    return anisotropy(source.spatial_scale, axis) if spatial else 1.0


def world(source: ImageSource, axis: int, index: int) -> float:
    return float(source.spatial_translate[axis] + source.spatial_scale[axis] * index)


def index_of(source: ImageSource, axis: int, position: float) -> int:
    """The slice index nearest to world ``position`` along ``axis``, clipped to the data."""
    scale = source.spatial_scale[axis] or 1.0
    i = int(round((position - source.spatial_translate[axis]) / scale))
    return int(np.clip(i, 0, source.spatial_shape[axis] - 1))


def slice_stack(source: ImageSource, axis: int, index: tuple) -> SliceStack:
    """The slices of the image along ``axis`` through ``index``, seen as the dock sees them
    (same raw pixels and normalisation, hence the same embedding cache keys).  The run reads
    the data array it started with: the user may replace the layer's data (another shape)
    meanwhile, and it is read from the worker's threads."""
    normalisation = source.normalisation()
    data = source.layer.data

    def read(i: int):
        where = list(index)
        where[axis] = i
        return source.read(tuple(where), data)

    return SliceStack(source.spatial_shape[axis], read, dock_to_rgb(source), normalisation)


def dock_to_rgb(source: ImageSource):
    """raw slice -> the uint8 RGB the dock's model sees, with the layer's contrast limits of
    now: a function that reads no layer state (it runs in worker threads)."""
    if source.channel_first:
        return source.to_rgb  # per-channel percentiles
    limits = tuple(float(v) for v in source.layer.contrast_limits)

    def to_rgb(raw, limits=limits):
        return to_uint8_rgb(raw, limits)

    return to_rgb

"""Object tables: measurements per object of a label image, filters on them, CSV export.

A table is a ``dict[str, np.ndarray]`` of equal-length columns, one row per object: what
napari's ``layer.features`` accepts (napari turns it into a pandas DataFrame; for a Labels
layer, an ``index`` column names the label of each row, see docs/workflows.md).  Columns:

* ``plane`` (3D labels only: the plane index, objects are measured plane by plane),
* ``label``, ``area`` (pixels), ``perimeter`` (skimage's, pixels), ``solidity`` (area over
  convex hull area), ``circularity`` (4 pi area / perimeter^2: 1 for a disk, smaller for
  elongated or ragged shapes; NaN for a single pixel, whose perimeter is 0), ``eccentricity``
  (of the ellipse with the same second moments: 0 a circle, towards 1 a line);
* with an image: ``mean_intensity``, ``max_intensity`` (``_0``, ``_1``... per channel);
* with model outputs: ``score`` (predicted IoU) and ``stability``.
"""
from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import ImageError, SegAnyError
from .overlap import check_labels

SHAPE_PROPERTIES = ("label", "area", "perimeter", "solidity", "eccentricity")
INTENSITY_PROPERTIES = ("intensity_mean", "intensity_max")
RENAMED = {"intensity_mean": "mean_intensity", "intensity_max": "max_intensity"}


def object_features(labels, image=None, scores=None, stability=None) -> dict[str, np.ndarray]:
    """Measurements of every object of ``labels``.

    Args:
        labels: (Y, X) integer labels, or (Z, Y, X) measured plane by plane (2D shape
            measures on each plane; one row per object and plane, with a ``plane`` column).
        image: intensities of labels' shape, optionally with a trailing channel axis.
        scores, stability: per-object model values (everything mode's ``predicted_iou``,
            ``stability_score``): a mapping ``{label: value}``, or a sequence whose element i
            belongs to label i + 1 (the order of ``EverythingResult.records``); for (Z, Y, X)
            labels also a list of one of those per plane.  Objects without a value get NaN.

    Returns:
        ``dict[str, np.ndarray]`` columns (see the module docstring), rows by plane then label.
    """
    labels = np.asarray(labels)
    check_labels(labels, 3 if labels.ndim == 3 else 2, "object_features: labels")
    image = _check_image(image, labels.shape)
    if labels.ndim == 2:
        return _plane_features(labels, image, scores, stability)
    tables = []
    for z in range(labels.shape[0]):
        table = _plane_features(labels[z], None if image is None else image[z],
                                _for_plane(scores, z, labels.shape[0]),
                                _for_plane(stability, z, labels.shape[0]))
        tables.append({"plane": np.full(len(table["label"]), z, np.int64), **table})
    return {key: np.concatenate([t[key] for t in tables]) for key in tables[0]}


def _check_image(image, shape):
    if image is None:
        return None
    image = np.asarray(image)
    if image.shape[:len(shape)] != shape or image.ndim > len(shape) + 1:
        raise ImageError(f"The image has shape {image.shape}, the labels {shape}: give the image "
                         "the labels were made from (with an optional trailing channel axis).")
    return image


def _plane_features(plane, image, scores, stability) -> dict[str, np.ndarray]:
    from skimage.measure import regionprops_table

    properties = SHAPE_PROPERTIES + (INTENSITY_PROPERTIES if image is not None else ())
    raw = regionprops_table(plane, intensity_image=image, properties=properties)
    table = {"label": raw["label"].astype(np.int64), "area": raw["area"].astype(np.int64)}
    for name in ("perimeter", "solidity"):
        table[name] = raw[name].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        circularity = 4 * np.pi * table["area"] / table["perimeter"] ** 2
    table["circularity"] = np.where(table["perimeter"] > 0, circularity, np.nan)
    table["eccentricity"] = raw["eccentricity"].astype(np.float64)
    for key, values in raw.items():
        base, _, channel = key.partition("-")
        if base in RENAMED:
            table[RENAMED[base] + (f"_{channel}" if channel else "")] = values.astype(np.float64)
    for name, values in (("score", scores), ("stability", stability)):
        if values is not None:
            table[name] = per_label(values, table["label"])
    return table


def per_label(values, labels: np.ndarray) -> np.ndarray:
    """``values`` (a mapping {label: value}, or a sequence for labels 1, 2, ...) at ``labels``."""
    if isinstance(values, Mapping):
        return np.array([values.get(int(k), np.nan) for k in labels], np.float64)
    lut = np.r_[np.nan, np.asarray(values, np.float64).ravel()]
    inside = labels < len(lut)
    return np.where(inside, lut[np.where(inside, labels, 0)], np.nan)


def _for_plane(values, z: int, n_planes: int):
    """The per-plane entry of ``values`` when it is a list of one per plane, else values."""
    if isinstance(values, (list, tuple)) and len(values) == n_planes and n_planes and \
            (values[0] is None or isinstance(values[0], Mapping) or np.ndim(values[0]) == 1):
        return values[z]
    return values


class FilteredObjects(NamedTuple):
    """``keep``: (rows,) bool over the table; ``ids``: the kept labels (with
    ``features["plane"][keep]`` for 3D); ``labels``: the label image without the others."""

    keep: np.ndarray
    ids: np.ndarray
    labels: np.ndarray | None


def filter_objects(labels, features: dict, paint: bool = True, **ranges) -> FilteredObjects:
    """Keep the objects whose features are within ``name=(min, max)`` ranges (inclusive;
    None for an open end), e.g. ``filter_objects(labels, table, area=(50, None),
    circularity=(0.8, 1.2))``.  A NaN value fails any range on its column.  ``paint=False``
    skips the filtered label image (e.g. to hide objects with a colormap instead).
    Objects of ``labels`` missing from the table are removed."""
    keep = np.ones(len(features["label"]), bool)
    for name, bounds in ranges.items():
        if name not in features:
            raise ValueError(f"No column {name!r} to filter on: the table has "
                             f"{', '.join(features)}.")
        keep &= _within(np.asarray(features[name], np.float64), *_bounds(name, bounds))
    ids = np.asarray(features["label"])[keep]
    return FilteredObjects(keep, ids, _painted(labels, features, keep) if paint else None)


def _within(column: np.ndarray, low, high) -> np.ndarray:
    if low is None and high is None:
        return np.ones(len(column), bool)
    inside = ~np.isnan(column)
    if low is not None:
        inside &= column >= low
    if high is not None:
        inside &= column <= high
    return inside


def _bounds(name, bounds):
    try:
        low, high = bounds
    except (TypeError, ValueError):
        raise ValueError(f"{name}: give a (min, max) pair (None for an open end), not "
                         f"{bounds!r}.") from None
    return low, high


def _painted(labels, features, keep) -> np.ndarray:
    labels = np.asarray(labels)
    kept = np.asarray(features["label"])[keep]
    if labels.ndim == 2 or "plane" not in features:
        return np.where(np.isin(labels, kept), labels, 0).astype(labels.dtype, copy=False)
    out = np.zeros_like(labels)
    planes = np.asarray(features["plane"])[keep]
    for z in range(labels.shape[0]):
        plane = labels[z]
        out[z] = np.where(np.isin(plane, kept[planes == z]), plane, 0)
    return out


def write_features_csv(features: dict, path) -> Path:
    """Write a table as CSV (a header row of column names, then one row per object),
    atomically: the file appears complete or not at all."""
    path = Path(path).expanduser()
    names = list(features)
    columns = [np.asarray(features[n]).tolist() for n in names]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".csv", dir=path.parent, prefix=f".{path.stem}-")
    except OSError as exc:
        raise SegAnyError(f"Cannot write {path}: {exc.strerror or exc}.") from None
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(names)
            writer.writerows(zip(*columns))
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise SegAnyError(f"Cannot write {path}: {exc.strerror or exc}.") from None
        raise
    return path

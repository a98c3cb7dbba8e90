"""The object table of an everything-mode result: one row per mask, each measured whole.

Masks of an :class:`~..everything.EverythingResult` may overlap (a nucleus inside its cell);
its label image paints the smaller on top, so measuring that image would give a covered mask
only its visible part, and its measures would change as filters drop the masks on top.  Here
every mask is measured as if alone, with :func:`.features.object_features` (the same
columns), its ``score`` (predicted IoU) and ``stability``.  Masks are packed into a few
planes in which they do not overlap (usually one or two), each plane measured at once; masks
that fit none of them are measured on their own crop (the same values: every measure is
invariant to the crop, skimage measures the bounding box).  :func:`per_object` folds the
rows of a 3D object's planes into one (``layer.features`` takes one row per label).
"""
from __future__ import annotations

import numpy as np

from ..everything.result import labels_dtype
from .features import object_features

MAX_PLANES = 3  # full-size planes of non-overlapping masks; further masks go crop by crop
PLANES_BUDGET = 128 << 20  # bytes: a large (tiled) image packs into fewer planes
PAD = 1  # a crop's margin, so that the mask does not touch its border


def result_features(result, image=None) -> dict[str, np.ndarray]:
    """Measurements of every mask of ``result``: row i is ``result.records[i]``, with
    ``label`` i + 1 (its id in ``result.labels`` and ``result.paint()``).

    Args:
        result: an EverythingResult (its records' ``predicted_iou`` and ``stability_score``
            give the ``score`` and ``stability`` columns).
        image: the plane's intensities, of the result's (H, W) shape with an optional trailing
            channel axis, for ``mean_intensity`` / ``max_intensity`` (``_0``, ``_1``... per
            channel); None leaves them out.

    Returns:
        ``dict[str, np.ndarray]`` columns as ``object_features``; an empty mask gets area 0
        and NaN measures.
    """
    records = result.records
    shape = tuple(result.image_shape)
    image = None if image is None else np.asarray(image)
    scores = [float(r.get("predicted_iou", np.nan)) for r in records]
    stability = [float(r.get("stability_score", np.nan)) for r in records]
    planes, alone = _pack(records, shape)
    tables = [object_features(plane, image, scores, stability) for plane in planes]
    tables += [_alone(i, records[i].mask, image, scores, stability) for i in alone]
    if not tables:  # no masks: the columns, no rows
        tables = [object_features(np.zeros((1, 1), np.int32),
                                  None if image is None else image[:1, :1], [], [])]
    return _in_record_order(tables, len(records), scores, stability)


def _pack(records, shape):
    """Masks into up to MAX_PLANES label planes without overlap; the indices left over."""
    planes: list[np.ndarray] = []
    alone: list[int] = []
    dtype = labels_dtype(len(records))
    most = max(1, min(MAX_PLANES, PLANES_BUDGET // (dtype.itemsize * shape[0] * shape[1])))
    for i, record in enumerate(records):
        mask = record.mask
        if not mask.area:
            continue
        y0, x0, y1, x1 = mask.bbox
        crop = mask.crop()
        target = next((p for p in planes if not p[y0:y1, x0:x1][crop].any()), None)
        if target is None and len(planes) < most:
            target = np.zeros(shape, dtype)
            planes.append(target)
        if target is None:
            alone.append(i)
        else:
            target[y0:y1, x0:x1][crop] = i + 1
    return planes, alone


def _alone(i: int, mask, image, scores, stability) -> dict[str, np.ndarray]:
    """One mask measured on its padded crop (label i + 1)."""
    y0, x0, y1, x1 = mask.bbox
    h, w = mask.shape
    ty0, tx0, ty1, tx1 = max(y0 - PAD, 0), max(x0 - PAD, 0), min(y1 + PAD, h), min(x1 + PAD, w)
    labels = np.zeros((ty1 - ty0, tx1 - tx0), np.int32)
    labels[y0 - ty0:y1 - ty0, x0 - tx0:x1 - tx0][mask.crop()] = i + 1
    crop = None if image is None else image[ty0:ty1, tx0:tx1]
    return object_features(labels, crop, {i + 1: scores[i]}, {i + 1: stability[i]})


def _in_record_order(tables: list[dict], n: int, scores, stability) -> dict[str, np.ndarray]:
    """The rows of ``tables`` by label 1..n; a label without a row (an empty mask) gets
    area 0 and NaN measures; score and stability come from the records."""
    joined = {key: np.concatenate([t[key] for t in tables]) for key in tables[0]}
    where = np.full(n + 1, -1, np.int64)
    where[joined["label"]] = np.arange(len(joined["label"]))
    rows = where[1:]
    missing, take = rows < 0, np.maximum(rows, 0)
    out = {"label": np.arange(1, n + 1, dtype=np.int64)}
    for key, column in joined.items():
        if key == "label":
            continue
        values = column[take] if len(column) else np.zeros(n, column.dtype)
        fill = 0 if key == "area" else np.nan
        out[key] = np.where(missing, fill, values).astype(column.dtype)
    out["score"] = np.asarray(scores, np.float64).reshape(n)
    out["stability"] = np.asarray(stability, np.float64).reshape(n)
    return out


def per_object(table: dict) -> dict[str, np.ndarray]:
    """One row per label from a table with a row per object and plane (3D objects, as
    ``object_features`` measures (Z, Y, X) labels): napari's ``layer.features`` takes one row
    per label value.  Columns: ``label``; ``volume`` (pixels over all planes) and ``planes``
    (how many); ``plane`` and the 2D measures (``area``, ``perimeter``, ``solidity``,
    ``circularity``, ``eccentricity``) of its largest cross-section; ``mean_intensity``
    (over all its pixels), ``max_intensity``; ``score`` and ``stability``: the mean of its
    masks' (NaN ignored)."""
    labels, row_of = np.unique(np.asarray(table["label"]), return_inverse=True)
    n, area = labels.size, np.asarray(table["area"], np.float64)
    volume = np.bincount(row_of, area, minlength=n)
    counts = np.bincount(row_of, minlength=n)
    first_of_group = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
    largest = np.lexsort((-area, row_of))[first_of_group]  # each label's largest row
    out = {"label": labels.astype(np.int64), "volume": volume.astype(np.int64),
           "planes": counts.astype(np.int64)}
    for key, column in table.items():
        column = np.asarray(column)
        if key in out:
            continue
        if key.startswith("mean_intensity"):
            with np.errstate(invalid="ignore", divide="ignore"):
                out[key] = np.bincount(row_of, np.nan_to_num(column) * area, minlength=n) / volume
        elif key.startswith("max_intensity"):
            out[key] = np.full(n, -np.inf)
            np.maximum.at(out[key], row_of, np.where(np.isnan(column), -np.inf, column))
            out[key][np.isinf(out[key])] = np.nan
        elif key in ("score", "stability"):
            known = ~np.isnan(column)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[key] = (np.bincount(row_of, np.where(known, column, 0), minlength=n)
                            / np.bincount(row_of, known, minlength=n))
        else:  # plane and the 2D measures: those of the largest cross-section
            out[key] = column[largest]
    return out

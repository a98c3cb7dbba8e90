"""The object table of a batch: one row per object and plane, ``OUT/objects.csv``.

Columns: ``input`` (file name), ``plane`` (plane number, row-major over the leading axes T,
Z), ``label`` (the id in the output labels), ``area`` (pixels), ``bbox_y0, bbox_x0,
bbox_y1, bbox_x1`` (rows / columns, end exclusive), ``centroid_y, centroid_x``, ``score``
(the model's predicted IoU) and ``stability`` (stability score; NaN where the method has
none).  Rows are measured on each plane's painted labels (the visible part of each mask),
per plane in the workers; ids are mapped to the output's at the end.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..workflows.features import per_label

COLUMNS = ("input", "plane", "label", "area", "bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1",
           "centroid_y", "centroid_x", "score", "stability")
MEASURES = COLUMNS[3:]


def plane_rows(labels: np.ndarray, records) -> dict[str, list]:
    """Measures of every id of a (H, W) label plane; ``records[i]`` (SAM-style, with
    ``predicted_iou`` and ``stability_score``) belongs to id i + 1.  JSON-able columns."""
    from scipy import ndimage

    ids = np.unique(labels[labels > 0])
    if not ids.size:
        return {"label": [], **{name: [] for name in MEASURES}}
    area = ndimage.sum_labels(np.ones(labels.shape), labels, ids)
    cy, cx = (np.asarray(c) for c in zip(*ndimage.center_of_mass(np.ones(labels.shape),
                                                                   labels, ids)))
    boxes = ndimage.find_objects(labels, max_label=int(ids.max()))
    box = np.array([[s[0].start, s[1].start, s[0].stop, s[1].stop] for s in
                    (boxes[i - 1] for i in ids)])
    scores = per_label([r["predicted_iou"] for r in records], ids)
    stability = per_label([r.get("stability_score", np.nan) for r in records], ids)
    columns = {"label": ids, "area": area.astype(np.int64), "bbox_y0": box[:, 0],
               "bbox_x0": box[:, 1], "bbox_y1": box[:, 2], "bbox_x1": box[:, 3],
               "centroid_y": cy, "centroid_x": cx, "score": scores, "stability": stability}
    return {name: np.asarray(values).tolist() for name, values in columns.items()}


def image_table(name: str, planes: dict[int, dict], id_maps: dict[int, dict]) -> dict:
    """The rows of one image: ``planes[k]`` the rows of plane k (local ids), ``id_maps[k]``
    ``{local id: output id}``; rows by plane, then output id."""
    columns: dict[str, list] = {c: [] for c in COLUMNS}
    for k in sorted(planes):
        rows, mapping = planes[k], id_maps[k]
        order = np.argsort([mapping[int(i)] for i in rows["label"]], kind="stable")
        for i in order:
            columns["input"].append(name)
            columns["plane"].append(k)
            columns["label"].append(mapping[int(rows["label"][i])])
            for measure in MEASURES:
                columns[measure].append(rows[measure][i])
    return columns


def concatenate_csv(parts: list[Path], path: Path) -> Path:
    """Join per-image CSV files (one header each) into ``path``, atomically; missing parts
    are left out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".csv", dir=path.parent, prefix=f".{path.stem}-")
    try:
        with os.fdopen(fd, "w", newline="") as out:
            out.write(",".join(COLUMNS) + "\n")
            for part in parts:
                if part.is_file():
                    with open(part, newline="") as fh:
                        fh.readline()  # its header
                        out.write(fh.read())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

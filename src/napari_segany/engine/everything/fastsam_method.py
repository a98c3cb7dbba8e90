"""Everything mode with FastSAM: its instance masks as they come, in the EverythingResult form.

A thin adapter over :func:`..detection.fastsam.fastsam_everything` (one YOLOv8-seg
pass, NMS, masks from prototypes): every FastSAM object becomes a record with SAM's keys
(``segmentation``, ``area``, ``bbox`` x, y, w, h from the mask, ``predicted_iou`` = FastSAM's
score, ``box`` = FastSAM's box x0, y0, x1, y1, ``crop_box`` = the whole image).  FastSAM has
no stability score: the key is absent and the stability filter lets these records through.
No prompt is decoded (``n_prompts`` 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..detection import DetectionParams
from ..progress import Job, Progress
from .masks import CompactMask
from .methods import checked_params
from .result import EverythingResult, Record


@dataclass
class FastSAMParams(DetectionParams):
    """FastSAM's ``everything`` parameters, with the official defaults."""

    retina_masks: bool = True

    @classmethod
    def from_kwargs(cls, **kwargs) -> "FastSAMParams":
        return checked_params(cls, "fastsam", kwargs)


def iter_fastsam(rgb: np.ndarray, model, **params) -> Job[EverythingResult]:
    """Generator: yields Progress, returns the EverythingResult of FastSAM on (H, W, 3) uint8 RGB.

    ``model`` is a FastSAM network (``load_model('fastsam_s')``).  The network pass cannot be
    interrupted: cancelling takes effect before it or right after it.
    """
    from ..detection import fastsam_everything

    from .methods import check_fastsam_network

    p = FastSAMParams.from_kwargs(**params)
    check_fastsam_network(model)
    yield Progress(0, 2, "FastSAM: one pass over the image")
    found = fastsam_everything(rgb, model, conf=p.conf, iou=p.iou, imgsz=p.imgsz,
                               max_det=p.max_det, retina_masks=p.retina_masks)
    yield Progress(1, 2, f"FastSAM: {len(found)} masks")
    records = records_from_fastsam(found)
    yield Progress(2, 2, f"{len(records)} objects")
    return EverythingResult(records, tuple(rgb.shape[:2]), "fastsam", 0)


def records_from_fastsam(found) -> list[Record]:
    """FastSAMResult (``crop(i)`` inside ``crop_boxes[i]`` x0, y0, x1, y1) -> SAM-style records,
    in FastSAM's order (decreasing score).

    Empty masks (a box with no pixel above 0) are dropped: they are no object.
    """
    h, w = found.image_shape
    records = []
    for i in range(len(found)):
        x0, y0, _, _ = (int(v) for v in found.crop_boxes[i])
        mask = CompactMask.from_dense(found.crop(i), offset=(y0, x0), shape=(h, w))
        if not mask.area:
            continue
        bx0, by0, bx1, by1 = mask.box_xyxy
        fields_ = {
            "area": mask.area,
            "bbox": [float(bx0), float(by0), float(bx1 - bx0), float(by1 - by0)],
            "predicted_iou": float(found.scores[i]),
            "box": [float(v) for v in found.boxes[i]],
            "crop_box": [0, 0, w, h],
        }
        records.append(Record(mask, fields_))
    return records

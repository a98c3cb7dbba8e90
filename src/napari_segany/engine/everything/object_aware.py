"""MobileSAMv2's object-aware prompting: detector boxes -> batched box prompts -> masks.

As MobileSAMv2's ``Inference.py``: boxes of the object-aware YOLOv8 (conf 0.4, iou 0.9,
imgsz 1024, max_det 300) go, ``points_per_batch`` at a time, through the prompt encoder and the
mask decoder with ``multimask_output=False``; a mask is ``logits > 0`` after SAM's
postprocessing.  No filter runs by default (as MobileSAMv2); the grid method's score,
stability and duplicate (box NMS) filters can be switched on.

MobileSAMv2 decodes 320 boxes at once.  The results do not depend on the batch size: here
batches of 64 are decoded a few at a time on one thread each (:mod:`.parallel`), which is
faster (11.0 instead of 12.5 s for 300 boxes on 2 cores, far more under load) and lets a
cancel take effect sooner, for ~250 MB more at the peak (two batches in flight).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..detection import DetectionParams, nms
from ..embeddings import Embedding
from ..interactive import Predictor
from ..progress import Job, Progress
from .candidates import Candidates
from .methods import checked_params
from .grid import decode_in_steps
from .parallel import decode_workers, ordered_map
from .upsample import candidates_from_lowres


@dataclass
class ObjectAwareParams(DetectionParams):
    """MobileSAMv2's parameters: the detector's (``conf``, ``iou``, ``imgsz``, ``max_det``),
    then the box prompts' batches and the optional filters."""

    points_per_batch: int = 64  # boxes per batch (MobileSAMv2: 320; same results)
    pred_iou_thresh: float = 0.0  # 0 = off (MobileSAMv2)
    stability_score_thresh: float = 0.0  # 0 = off
    stability_score_offset: float = 1.0
    box_nms_thresh: float | None = None  # None = off; e.g. 0.7 removes duplicate masks
    upsample_chunk: int = 16
    decode_workers: int | None = None  # batches decoded at once (speed, not results)

    @classmethod
    def from_kwargs(cls, **kwargs) -> "ObjectAwareParams":
        return checked_params(cls, "object_aware", kwargs)


def iter_object_aware(predictor: Predictor, rgb: np.ndarray, detector, params: ObjectAwareParams,
                      embedding: Embedding | torch.Tensor | None = None, cancel=None
                      ) -> Job[tuple[Candidates, int]]:
    """Generator: yields Progress, returns (Candidates in detector order, boxes decoded).
    ``cancel`` (an Event) stops the run between two steps of a batch (raises Cancelled)."""
    from ..detection import detect_objects
    from .methods import check_detector

    check_detector(detector)
    yield Progress(0, 3, "detecting objects")
    boxes, _scores = detect_objects(rgb, detector, conf=params.conf, iou=params.iou,
                                    imgsz=params.imgsz, max_det=params.max_det)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n_batches = max(1, math.ceil(len(boxes) / params.points_per_batch))
    total = 2 + n_batches
    yield Progress(1, total, f"{len(boxes)} objects found; encoding the image")
    features = embedding if embedding is not None else predictor.encode(rgb)
    predictor.set_embedding(features, rgb.shape[:2])
    step = params.points_per_batch
    parts = []
    work = ordered_map(
        lambda start: _decode_boxes(predictor, boxes[start:start + step], params, cancel),
        range(0, len(boxes), step), decode_workers(params.decode_workers), cancel)
    for b, part in enumerate(work):
        parts.append(part)
        yield Progress(2 + b, total, f"decoding: {b + 1}/{n_batches} batches done "
                                     f"({min((b + 1) * step, len(boxes))}/{len(boxes)} boxes)")
    data = Candidates.concat(parts)
    if params.box_nms_thresh is not None and len(data):
        data = data.filter(nms(data.boxes, data.iou, params.box_nms_thresh))
    return data, len(boxes)


def _decode_boxes(predictor: Predictor, boxes: np.ndarray, params: ObjectAwareParams,
                  cancel=None) -> Candidates:
    boxes_model = torch.as_tensor(predictor.transform.apply_boxes(boxes, predictor.original_size))
    multimask = predictor.spec.single_mask_from_multimask
    low_res, iou = decode_in_steps(predictor, cancel, multimask, boxes=boxes_model)
    best = iou.argmax(dim=1)  # 0 when there is one candidate per prompt
    rows = torch.arange(len(iou))
    low_res, iou = low_res[rows, best], iou[rows, best]
    if params.pred_iou_thresh > 0:
        keep = torch.nonzero(iou > params.pred_iou_thresh).flatten()
        low_res, iou, boxes = low_res[keep], iou[keep], boxes[keep.numpy()]
    h, w = predictor.original_size
    return candidates_from_lowres(predictor, low_res, iou, (0, 0, w, h), (h, w),
                                  params.stability_score_thresh, params.stability_score_offset,
                                  prompt_boxes=boxes, chunk=params.upsample_chunk, cancel=cancel)

"""One-pass detectors (YOLOv8): boxes, and FastSAM's instance masks, as the official code.

* :mod:`.boxes`: IoU, NMS (torchvision's, in plain torch), boxes of masks;
* :mod:`.yolo`: the YOLOv8 pipeline: OpenCV-exact letterbox, NMS, box rescaling,
  :func:`detect_objects` (MobileSAMv2's object-aware boxes);
* :mod:`.fastsam`: FastSAM's masks from prototypes (:func:`fastsam_everything`, a compact
  :class:`FastSAMResult`) and its official point / box prompts on them.
"""
from __future__ import annotations

from .boxes import batched_nms, box_iou, nms
from .fastsam import FastSAMResult, fastsam_everything
from .yolo import DetectionParams, detect_objects

__all__ = ["DetectionParams", "FastSAMResult", "batched_nms", "box_iou", "detect_objects",
           "fastsam_everything", "nms"]

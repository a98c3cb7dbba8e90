"""FastSAM: every object's box, score and mask in one YOLOv8-seg pass, plus its point/box selection.

Reproduces CASIA-IVA-Lab/FastSAM (``FastSAMPredictor.postprocess`` with ``retina_masks=True``,
``FastSAMPrompt.point_prompt`` / ``box_prompt``) on top of :mod:`.detection`:

1. NMS (:func:`.detection.nms_detections`) on the head output;
2. every kept box snaps to the input border when within 20 px of it; a box whose IoU with
   the whole input canvas is > 0.9 becomes that canvas box (keeping its score and coefficients);
3. boxes go back to original pixels; mask logits = coefficients @ prototypes, padding cropped,
   bilinear (align_corners=False) to the original size, zero outside the box; mask = logit > 0.

Masks are kept compactly: per object the integer box where it can be non-zero and a bit-packed
crop of that box, so 300 masks on a large image cost about the sum of their box areas / 8 bytes.
Coordinates: boxes x0, y0, x1, y1 and points x, y in original pixels (x = column).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .yolo import (
    Letterbox, check_thresholds, model_input, nms_detections, official_channel_order, run_network,
    scale_boxes, snap_to_border,
)

FULL_BOX_IOU = 0.9  # FastSAM's threshold for "this box is the whole image"


class FastSAMResult:
    """Objects found by FastSAM in one image, by decreasing score.

    boxes: (N, 4) float32 x0, y0, x1, y1 original pixels; scores: (N,) float32;
    crop_boxes: (N, 4) int64 x0, y0, x1, y1 (end exclusive) of the region each mask may
    cover; areas: (N,) int64 mask pixel counts; image_shape: (H, W).
    Masks are stored bit-packed per crop (1 bit per pixel of its box): :meth:`crop`,
    :meth:`mask` and :meth:`masks` unpack on request.
    """

    def __init__(self, boxes: np.ndarray, scores: np.ndarray, crop_boxes: np.ndarray,
                 crops: list[np.ndarray], image_shape: tuple[int, int]):
        self.boxes, self.scores = boxes, scores
        self.crop_boxes = np.asarray(crop_boxes, dtype=np.int64).reshape(-1, 4)
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.areas = np.array([int(c.sum()) for c in crops], dtype=np.int64)
        self._packed = [np.packbits(c, axis=-1) for c in crops]

    def __len__(self) -> int:
        return len(self._packed)

    @property
    def original_size(self) -> tuple[int, int]:
        """(H, W) of the image (as an embedding cache entry, which this result stands for)."""
        return self.image_shape

    @property
    def nbytes(self) -> int:
        """Memory held (for cache budgets)."""
        return int(sum(p.nbytes for p in self._packed) + self.boxes.nbytes + self.crop_boxes.nbytes)

    def crop(self, i: int) -> np.ndarray:
        """(y1 - y0, x1 - x0) bool mask of object ``i`` inside ``crop_boxes[i]``."""
        x0, _, x1, _ = self.crop_boxes[i]
        return np.unpackbits(self._packed[i], axis=-1, count=int(x1 - x0)).astype(bool)

    def mask(self, i: int) -> np.ndarray:
        """(H, W) bool mask of object ``i``."""
        return self.masks([i])[0]

    def masks(self, indices=None) -> np.ndarray:
        """(k, H, W) bool full-size masks (all objects by default): k * H * W bytes, ask sparingly."""
        indices = range(len(self)) if indices is None else list(indices)
        out = np.zeros((len(indices), *self.image_shape), dtype=bool)
        for row, i in enumerate(indices):
            x0, y0, x1, y1 = self.crop_boxes[i]
            out[row, y0:y1, x0:x1] = self.crop(i)
        return out


def empty_result(image_shape: tuple[int, int]) -> FastSAMResult:
    return FastSAMResult(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                         np.zeros((0, 4), np.int64), [], image_shape)


# ----------------------------------------------------------------------------- boxes


def replace_full_image_boxes(dets: torch.Tensor, input_shape: tuple[int, int],
                             iou_thres: float = FULL_BOX_IOU) -> torch.Tensor:
    """FastSAM's full-image rule, in place: rows whose box has IoU > iou_thres with the
    input canvas [0, 0, W_in, H_in] get exactly that box and class 0 (score and coefficients kept).

    The official code handles a single such box (it fails and returns nothing for two or
    more); here every such box is replaced the same way.  dets: (N, 6 + nm).
    """
    h, w = input_shape
    full = torch.tensor([0.0, 0.0, float(w), float(h)], dtype=dets.dtype)
    boxes = dets[:, :4]
    inter_w = (torch.min(full[2], boxes[:, 2]) - torch.max(full[0], boxes[:, 0])).clamp(0)
    inter_h = (torch.min(full[3], boxes[:, 3]) - torch.max(full[1], boxes[:, 1])).clamp(0)
    inter = inter_w * inter_h
    full_area = (full[2] - full[0]) * (full[3] - full[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    hits = torch.nonzero(inter / (full_area + areas - inter) > iou_thres).flatten()
    dets[hits, :4] = full
    dets[hits, 5] = 0
    return dets


def fastsam_boxes(pred: torch.Tensor, geo: Letterbox, conf: float, iou: float, max_det: int,
                  nc: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Head output (4 + nc + nm, A) -> (dets (N, 6 + nm) in input pixels after the border
    snap and the full-image rule, boxes (N, 4) in original pixels)."""
    dets = nms_detections(pred, conf, iou, max_det, nc)
    snap_to_border(dets[:, :4], geo.input_shape)  # dets[:, :4] is a view: in place, as FastSAM
    replace_full_image_boxes(dets, geo.input_shape)
    return dets, scale_boxes(geo.input_shape, dets[:, :4].clone(), geo.orig_shape)


# ----------------------------------------------------------------------------- masks


def _box_span(lo: float, hi: float, size: int) -> tuple[int, int]:
    """Pixels p with lo <= p < hi (crop_mask's rule), clipped to [0, size)."""
    start = min(max(math.ceil(lo), 0), size)
    return start, max(min(math.ceil(hi), size), start)


def _taps(out_size: int, in_size: int, start: int, stop: int, nearest: bool = False):
    """Source taps of output pixels start..stop-1 for a resize in_size -> out_size.

    Bilinear: torch's ``upsample_bilinear2d`` (align_corners=False) in float32 arithmetic.
    Returns (i0, i1, w0, w1) numpy arrays; nearest gives (i, i, 1, 0).
    """
    dst = np.arange(start, stop)
    if nearest:
        i0 = np.minimum((dst * in_size) // out_size, in_size - 1)
        return i0, i0, np.ones(len(dst), np.float32), np.zeros(len(dst), np.float32)
    if in_size == out_size:
        return dst, dst, np.ones(len(dst), np.float32), np.zeros(len(dst), np.float32)
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.maximum(scale * (dst.astype(np.float32) + np.float32(0.5)) - np.float32(0.5), np.float32(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    w1 = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
    i1 = i0 + (i0 < in_size - 1)
    return i0, i1, (np.float32(1) - w1).astype(np.float32), w1


def proto_window(protos: torch.Tensor, orig_shape: tuple[int, int]) -> torch.Tensor:
    """(nm, mh, mw) prototypes -> the part covering the image (padding cropped), as
    ``process_mask_native`` crops it (int() of the padding at prototype scale)."""
    _, mh, mw = protos.shape
    h, w = orig_shape
    gain = min(mh / h, mw / w)
    pad_w, pad_h = (mw - w * gain) / 2, (mh - h * gain) / 2
    return protos[:, int(pad_h):int(mh - pad_h), int(pad_w):int(mw - pad_w)]


def mask_region_logits(window: np.ndarray, coeffs: np.ndarray, box, orig_shape: tuple[int, int],
                       nearest: bool = False) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Mask logits of one object inside its box, at original resolution.

    window: (nm, ph, pw) float32 prototypes without padding (:func:`proto_window`);
    coeffs: (nm,); box: x0, y0, x1, y1 original pixels.  Returns ((y1-y0, x1-x0) float32
    logits, (x0, y0, x1, y1) int region).  Outside that region the official logits are 0.
    """
    h, w = orig_shape
    x0, x1 = _box_span(float(box[0]), float(box[2]), w)
    y0, y1 = _box_span(float(box[1]), float(box[3]), h)
    if x1 == x0 or y1 == y0:
        return np.zeros((y1 - y0, x1 - x0), np.float32), (x0, y0, x1, y1)
    ya, yb, wy0, wy1 = _taps(h, window.shape[1], y0, y1, nearest)
    xa, xb, wx0, wx1 = _taps(w, window.shape[2], x0, x1, nearest)
    r0, c0 = int(ya.min()), int(xa.min())
    sub = window[:, r0:int(yb.max()) + 1, c0:int(xb.max()) + 1]
    logits = np.tensordot(coeffs, sub, axes=(0, 0)).astype(np.float32)  # (rows, cols) of prototypes
    rows = logits[:, xa - c0] * wx0 + logits[:, xb - c0] * wx1  # along x first, as torch does
    region = rows[ya - r0] * wy0[:, None] + rows[yb - r0] * wy1[:, None]
    return region, (x0, y0, x1, y1)


def masks_from_protos(protos: torch.Tensor, coeffs: torch.Tensor, boxes: torch.Tensor,
                      orig_shape: tuple[int, int], nearest: bool = False
                      ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Compact masks of all objects: (N, 4) int crop boxes and N bool crops (logit > 0)."""
    window = proto_window(protos, orig_shape).float().numpy()
    coeffs_np = coeffs.float().numpy()
    crop_boxes, crops = [], []
    for i in range(len(boxes)):
        region, crop_box = mask_region_logits(window, coeffs_np[i], boxes[i].tolist(), orig_shape, nearest)
        crop_boxes.append(crop_box)
        crops.append(region > 0)
    return np.array(crop_boxes, dtype=np.int64).reshape(-1, 4), crops


# ----------------------------------------------------------------------------- everything


def fastsam_postprocess(pred: torch.Tensor, protos: torch.Tensor, geo: Letterbox, conf: float = 0.4,
                        iou: float = 0.9, max_det: int = 300, retina_masks: bool = True,
                        nc: int = 1) -> FastSAMResult:
    """Head output of one image -> :class:`FastSAMResult` (see the module docstring).

    pred: (4 + nc + nm, A); protos: (nm, H_in/4, W_in/4).  ``retina_masks=False`` takes
    the nearest prototype cell instead of bilinear interpolation (faster, blockier masks;
    not the official low-resolution path).
    """
    dets, boxes = fastsam_boxes(pred, geo, conf, iou, max_det, nc)
    if not len(dets):
        return empty_result(geo.orig_shape)
    crop_boxes, crops = masks_from_protos(protos, dets[:, 6:], boxes, geo.orig_shape,
                                          nearest=not retina_masks)
    return FastSAMResult(boxes.numpy().astype(np.float32), dets[:, 4].numpy().astype(np.float32),
                         crop_boxes, crops, geo.orig_shape)


def fastsam_everything(image, model, conf: float = 0.4, iou: float = 0.9, imgsz: int = 1024,
                       max_det: int = 300, retina_masks: bool = True) -> FastSAMResult:
    """All objects of an (H, W, 3) uint8 RGB image with a FastSAM network (``load_model('fastsam_s')``).

    conf: minimum score; iou: NMS threshold; imgsz: longest side of the network input
    (rounded up to a multiple of 32); max_det: at most this many objects.
    """
    check_thresholds(conf, iou, max_det)
    if not getattr(model.head, "has_proto", False):
        raise ValueError("This network has no mask prototypes (a detector): use detect_objects.")
    x, geo = model_input(image, imgsz, official_channel_order(model))
    pred, protos = run_network(model, x)
    return fastsam_postprocess(pred[0], protos[0], geo, conf, iou, max_det, retina_masks,
                               int(model.head.nc))


# ----------------------------------------------------------------------------- prompts


def _inside_count(result: FastSAMResult, i: int, x0: int, y0: int, x1: int, y1: int) -> int:
    """Pixels of mask i inside the box [x0, x1) x [y0, y1)."""
    cx0, cy0, cx1, cy1 = result.crop_boxes[i]
    ax0, ay0, ax1, ay1 = max(x0, cx0), max(y0, cy0), min(x1, cx1), min(y1, cy1)
    if ax1 <= ax0 or ay1 <= ay0:
        return 0
    return int(result.crop(i)[ay0 - cy0:ay1 - cy0, ax0 - cx0:ax1 - cx0].sum())


def select_by_box(result: FastSAMResult, box) -> int:
    """Index of the mask with the highest IoU with ``box`` (x0, y0, x1, y1 original pixels),
    as ``FastSAMPrompt.box_prompt``: the box is rounded and clipped, IoU counts mask pixels."""
    h, w = result.image_shape
    if len(box) != 4:
        raise ValueError(f"A box is (x0, y0, x1, y1); got {box!r}.")
    x0, y0 = max(round(box[0]), 0), max(round(box[1]), 0)
    x1, y1 = min(round(box[2]), w), min(round(box[3]), h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"The box {list(box)} is empty inside the {w}x{h} image: drag a larger box.")
    if not len(result):
        raise ValueError("FastSAM found no objects in this image: nothing to select.")
    inside = torch.tensor([_inside_count(result, i, x0, y0, x1, y1) for i in range(len(result))],
                          dtype=torch.float32)
    union = (x1 - x0) * (y1 - y0) + torch.from_numpy(result.areas).float() - inside
    return int(torch.argmax(inside / union))  # float32 and first-max ties, as the official code


def fastsam_box_prompt(result: FastSAMResult, boxes) -> tuple[np.ndarray, list[int]]:
    """Masks picked by one or more boxes: ``FastSAMPrompt.box_prompt(bboxes=boxes)``.

    Returns (k, H, W) bool masks of the distinct picked objects, in the official
    ``list(set(indices))`` order, and those indices.
    """
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    picked = list(set([select_by_box(result, box) for box in boxes]))  # the official order
    return result.masks(picked), picked


def fastsam_point_prompt(result: FastSAMResult, points, labels,
                         initial: np.ndarray | None = None) -> np.ndarray:
    """``FastSAMPrompt.point_prompt``: (H, W) bool union of the masks under foreground points
    minus those under background points, visiting masks from the largest to the smallest
    (so a smaller mask decides where masks overlap).

    points: (n, 2) x, y original pixels (truncated to int); labels: (n,) 1 foreground, 0 background.
    initial: (H, W) bool mask the points edit (ours, e.g. a box's pick; official: empty).
    """
    h, w = result.image_shape
    pts = np.asarray(points, dtype=float).reshape(-1, 2).astype(np.int64)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(pts) or not np.isin(labels, (0, 1)).all():
        raise ValueError("Give one label per point: 1 (foreground) or 0 (background).")
    outside = (pts[:, 0] < 0) | (pts[:, 0] >= w) | (pts[:, 1] < 0) | (pts[:, 1] >= h)
    if outside.any():
        raise ValueError(f"Point {pts[outside][0].tolist()} lies outside the {w}x{h} image.")
    out = np.zeros((h, w), dtype=bool) if initial is None else np.array(initial, dtype=bool)
    for i in sorted(range(len(result)), key=lambda k: -result.areas[k]):  # stable, as sorted()
        x0, y0, x1, y1 = result.crop_boxes[i]
        crop = None
        for (px, py), label in zip(pts, labels):
            if not (x0 <= px < x1 and y0 <= py < y1):
                continue
            crop = result.crop(i) if crop is None else crop
            if crop[py - y0, px - x0]:
                out[y0:y1, x0:x1][crop] = bool(label)
    return out

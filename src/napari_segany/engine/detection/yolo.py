"""YOLOv8 detection pipeline: letterbox, plain-torch NMS, box rescaling, ``detect_objects``.

Reproduces ultralytics 8.0.120 as FastSAM and MobileSAMv2 call it (see the parity READMEs):

* letterbox: keep aspect, resize with OpenCV's ``INTER_LINEAR`` (re-implemented here
  bit-exactly, no OpenCV dependency), pad to the next multiple of 32 with grey 114;
* NMS: score > conf, best class, sort, greedy IoU suppression with torchvision's order;
* boxes back to original pixels (``scale_boxes``), optional snap to the image border.

Boxes are x0, y0, x1, y1 (x = column, y = row) in pixels; images are (H, W, 3) uint8.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .boxes import nms

PAD_VALUE = 114
_COEF_BITS = 11  # OpenCV INTER_RESIZE_COEF_BITS: fixed-point weights for 8-bit images
_COEF_SCALE = 1 << _COEF_BITS


# ----------------------------------------------------------------------------- resize


def _linear_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV resizeGeneric coefficients for one axis: first tap, weights (w0, w1) as int.

    Mirrors ``cv::resize``: fx = float((d + 0.5) * scale - 0.5) in double then float,
    weights rounded separately (they need not sum to 2048), scale = 1 / (dst / src).
    """
    scale = 1.0 / (dst / src)
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    first = np.floor(f).astype(np.int64)
    frac = (f - first.astype(np.float32)).astype(np.float32)
    w0 = np.rint((np.float32(1) - frac) * np.float32(_COEF_SCALE)).astype(np.int64)
    w1 = np.rint(frac * np.float32(_COEF_SCALE)).astype(np.int64)
    return first, w0, w1


def _horizontal(rows: np.ndarray, dst_w: int) -> np.ndarray:
    """(R, W, C) uint8 -> (R, dst_w, C) int64 sums scaled by 2048 (exact integer arithmetic)."""
    src_w = rows.shape[1]
    first, w0, w1 = _linear_taps(src_w, dst_w)
    clamp = (first < 0) | (first >= src_w - 1)  # OpenCV: border taps get weight (2048, 0)
    first = np.clip(first, 0, src_w - 1)
    w0 = np.where(clamp, _COEF_SCALE, w0)
    w1 = np.where(clamp, 0, w1)
    nxt = np.minimum(first + 1, src_w - 1)
    r = rows.astype(np.int64)
    return r[:, first] * w0[None, :, None] + r[:, nxt] * w1[None, :, None]


def _vertical(s0: np.ndarray, s1: np.ndarray, b0: np.ndarray, b1: np.ndarray) -> np.ndarray:
    """Combine two horizontally filtered rows per output row the way OpenCV does for 8 bits.

    s0, s1: (H, L) int64 sums scaled by 2048; b0, b1: (H, 1) weights.  OpenCV's vector loop
    and its scalar tail (``VResizeLinear<uchar, ...>``) both compute
    ((s0 >> 4) * b0 >> 16) + ((s1 >> 4) * b1 >> 16), then (+2) >> 2: not a plain rounding of
    the exact sum, hence reproduced literally.
    """
    out = (((s0 >> 4) * b0) >> 16) + (((s1 >> 4) * b1) >> 16)
    return np.clip((out + 2) >> 2, 0, 255).astype(np.uint8)


def resize_linear_u8(image: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """Bit-exact ``cv2.resize(image, size_wh, interpolation=cv2.INTER_LINEAR)`` for (H, W, 3) uint8.

    Includes OpenCV's switch to INTER_AREA for an exact 2x downscale.  Checked against
    opencv-python-headless 4.10, 4.14 and 5.0 on ~230 sizes (2x up/down, 1-pixel sides).
    """
    dst_w, dst_h = int(size_wh[0]), int(size_wh[1])
    src_h, src_w = image.shape[:2]
    if (dst_w, dst_h) == (src_w, src_h):
        return image.copy()
    if src_w == 2 * dst_w and src_h == 2 * dst_h:  # OpenCV uses fast INTER_AREA here
        quad = image.reshape(dst_h, 2, dst_w, 2, -1).astype(np.uint16).sum(axis=(1, 3))
        return ((quad + 2) >> 2).astype(np.uint8).reshape(dst_h, dst_w, *image.shape[2:])
    img = image.reshape(src_h, src_w, -1)
    first, b0, b1 = _linear_taps(src_h, dst_h)
    r0 = np.clip(first, 0, src_h - 1)  # vertical border rows are clamped, weights are not
    r1 = np.clip(first + 1, 0, src_h - 1)
    needed, inverse = np.unique(np.concatenate([r0, r1]), return_inverse=True)
    hor = _horizontal(img[needed], dst_w).reshape(len(needed), -1)
    out = _vertical(hor[inverse[:dst_h]], hor[inverse[dst_h:]], b0[:, None], b1[:, None])
    return out.reshape(dst_h, dst_w, *image.shape[2:])


# ----------------------------------------------------------------------------- letterbox


@dataclass(frozen=True)
class Letterbox:
    """Geometry of one letterboxed image; shapes are (H, W), padding in input pixels."""

    orig_shape: tuple[int, int]
    resized_shape: tuple[int, int]
    input_shape: tuple[int, int]
    pad_top: int
    pad_left: int


def letterbox_geometry(orig_shape: tuple[int, int], imgsz: int = 1024, stride: int = 32) -> Letterbox:
    """ultralytics ``LetterBox(imgsz, auto=True, stride)``: aspect kept (upscaling allowed),
    padding to the next multiple of ``stride`` only (a minimal rectangle, not a square)."""
    h, w = orig_shape
    r = min(imgsz / h, imgsz / w)
    new_w, new_h = int(round(w * r)), int(round(h * r))
    dw, dh = (imgsz - new_w) % stride / 2, (imgsz - new_h) % stride / 2
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    return Letterbox((h, w), (new_h, new_w), (new_h + top + bottom, new_w + left + right), top, left)


def letterbox(image: np.ndarray, imgsz: int = 1024, stride: int = 32) -> tuple[np.ndarray, Letterbox]:
    """(H, W, 3) uint8 -> (H_in, W_in, 3) uint8 resized (OpenCV-exact) and padded with 114."""
    geo = letterbox_geometry(image.shape[:2], imgsz, stride)
    new_h, new_w = geo.resized_shape
    resized = image if (new_h, new_w) == image.shape[:2] else resize_linear_u8(image, (new_w, new_h))
    out = np.full((*geo.input_shape, image.shape[2]), PAD_VALUE, dtype=np.uint8)
    out[geo.pad_top:geo.pad_top + new_h, geo.pad_left:geo.pad_left + new_w] = resized
    return out, geo


def check_rgb_u8(image) -> np.ndarray:
    """The engine's image contract: (H, W, 3) uint8; raise an actionable ValueError otherwise."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"Expected an (H, W, 3) uint8 RGB image, got shape {image.shape} dtype {image.dtype}. "
            "Convert it with napari_segany.engine.images.to_uint8_rgb first."
        )
    if min(image.shape[:2]) < 2:
        raise ValueError(f"The image is {image.shape[0]}x{image.shape[1]} pixels: need at least 2x2.")
    return image


def check_imgsz(imgsz: int, stride: int = 32) -> int:
    """Round the input size up to a multiple of the stride, as ultralytics' check_imgsz."""
    if int(imgsz) < stride:
        raise ValueError(f"imgsz must be at least {stride}, got {imgsz}.")
    return -(-int(imgsz) // stride) * stride


def model_input(image: np.ndarray, imgsz: int, channel_order: str = "rgb") -> tuple[torch.Tensor, Letterbox]:
    """RGB uint8 image -> ((1, 3, H_in, W_in) float32 in [0, 1], geometry).

    ``channel_order='bgr'`` feeds reversed channels, as MobileSAMv2's official pipeline does.
    """
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}.")
    boxed, geo = letterbox(check_rgb_u8(image), check_imgsz(imgsz))
    if channel_order == "bgr":
        boxed = boxed[..., ::-1]
    x = torch.from_numpy(np.ascontiguousarray(boxed.transpose(2, 0, 1)))[None].float() / 255
    return x, geo


def official_channel_order(model) -> str:
    """The channel order the official pipeline of these weights feeds the network.

    MobileSAMv2 hands ultralytics an RGB array which ultralytics takes for BGR and flips, so
    its object-aware model sees BGR (documented in the parity README; the registry passes
    ``input_channel_order='bgr'`` to its builder); FastSAM sees RGB.
    """
    return getattr(model, "input_channel_order", None) or "rgb"


@dataclass
class DetectionParams:
    """A YOLOv8 pass's settings, with the defaults of FastSAM and MobileSAMv2: minimum score,
    NMS threshold, longest side of the network input, at most this many objects."""

    conf: float = 0.4
    iou: float = 0.9
    imgsz: int = 1024
    max_det: int = 300


# ----------------------------------------------------------------------------- network + NMS


def run_network(model, x: torch.Tensor, masks: bool = True):
    """Forward pass under inference_mode on the model's device; outputs come back on the CPU.
    Returns pred (1, 4 + nc [+ nm], A) and protos (1, nm, H_in/4, W_in/4) or None."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        pred, protos = model(x.to(device), masks=masks)
    return pred.cpu(), (protos.cpu() if protos is not None else None)


def check_thresholds(conf: float, iou: float, max_det: int) -> None:
    if not 0.0 <= conf <= 1.0 or not 0.0 <= iou <= 1.0:
        raise ValueError(f"conf and iou must lie in [0, 1], got conf={conf}, iou={iou}.")
    if int(max_det) < 1:
        raise ValueError(f"max_det must be a positive number of objects, got {max_det}.")


def xywh_to_xyxy(xywh: torch.Tensor) -> torch.Tensor:
    """(N, 4) cx, cy, w, h -> x0, y0, x1, y1 (same float ops as ultralytics)."""
    out = xywh.clone()
    out[:, 0] = xywh[:, 0] - xywh[:, 2] / 2
    out[:, 1] = xywh[:, 1] - xywh[:, 3] / 2
    out[:, 2] = xywh[:, 0] + xywh[:, 2] / 2
    out[:, 3] = xywh[:, 1] + xywh[:, 3] / 2
    return out


def nms_detections(pred: torch.Tensor, conf: float = 0.4, iou: float = 0.9, max_det: int = 300,
                   nc: int = 1, max_nms: int = 30000, max_wh: float = 7680.0) -> torch.Tensor:
    """ultralytics ``non_max_suppression`` for one image (best class only, class-aware).

    pred: (4 + nc + nm, A) head output (cx, cy, w, h in input pixels, scores, coefficients).
    Returns (N, 6 + nm): x0, y0, x1, y1, score, class, coefficients; by decreasing score.
    """
    x = pred.transpose(0, 1)
    x = x[x[:, 4:4 + nc].amax(1) > conf]
    box, cls, coeffs = x.split((4, nc, x.shape[1] - 4 - nc), 1)
    score, label = cls.max(1, keepdim=True)
    x = torch.cat((xywh_to_xyxy(box), score, label.float(), coeffs), 1)[score.view(-1) > conf]
    if not len(x):
        return x
    x = x[x[:, 4].argsort(descending=True)[:max_nms]]  # the same (unstable) sort call as ultralytics
    offsets = x[:, 5:6] * max_wh  # classes never suppress each other
    keep = nms(x[:, :4] + offsets, x[:, 4], iou, max_keep=int(max_det))
    return x[keep[:max_det]]


def snap_to_border(boxes: torch.Tensor, shape_hw: tuple[int, int], threshold: float = 20) -> torch.Tensor:
    """FastSAM's ``adjust_bboxes_to_image_border``, in place: sides within ``threshold``
    pixels of the image border move onto it.  boxes: (N, 4) x0, y0, x1, y1."""
    h, w = shape_hw
    boxes[:, 0] = torch.where(boxes[:, 0] < threshold, 0, boxes[:, 0])
    boxes[:, 1] = torch.where(boxes[:, 1] < threshold, 0, boxes[:, 1])
    boxes[:, 2] = torch.where(boxes[:, 2] > w - threshold, w, boxes[:, 2])
    boxes[:, 3] = torch.where(boxes[:, 3] > h - threshold, h, boxes[:, 3])
    return boxes


def scale_boxes(input_shape: tuple[int, int], boxes: torch.Tensor, orig_shape: tuple[int, int]) -> torch.Tensor:
    """Letterbox-input pixels -> original pixels, clipped to the image (ultralytics
    ``scale_boxes``, in place).  boxes: (N, 4) x0, y0, x1, y1; shapes (H, W)."""
    gain = min(input_shape[0] / orig_shape[0], input_shape[1] / orig_shape[1])
    pad_x = round((input_shape[1] - orig_shape[1] * gain) / 2 - 0.1)
    pad_y = round((input_shape[0] - orig_shape[0] * gain) / 2 - 0.1)
    boxes[..., [0, 2]] -= pad_x
    boxes[..., [1, 3]] -= pad_y
    boxes[..., :4] /= gain
    boxes[..., 0].clamp_(0, orig_shape[1])
    boxes[..., 1].clamp_(0, orig_shape[0])
    boxes[..., 2].clamp_(0, orig_shape[1])
    boxes[..., 3].clamp_(0, orig_shape[0])
    return boxes


def detector_postprocess(pred: torch.Tensor, geo: Letterbox, conf: float, iou: float,
                         max_det: int, nc: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """MobileSAMv2 ``PromptModelPredictor.postprocess``: NMS, border snap (input pixels), scale back.

    Returns boxes (N, 4) x0, y0, x1, y1 in original pixels and scores (N,).
    """
    dets = nms_detections(pred, conf, iou, max_det, nc)
    boxes = snap_to_border(dets[:, :4].clone(), geo.input_shape)
    return scale_boxes(geo.input_shape, boxes, geo.orig_shape), dets[:, 4].clone()


def detect_objects(image, detector, conf: float = 0.4, iou: float = 0.9, imgsz: int = 1024,
                   max_det: int = 300, channel_order: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of all objects in an image, with a YOLOv8 detector (MobileSAMv2's object-aware model).

    Args:
        image: (H, W, 3) uint8 RGB.
        detector: a network from ``load_model('mobilesamv2_objectaware')`` (FastSAM works too).
        conf: minimum score; iou: NMS threshold (boxes overlapping more are merged);
        imgsz: longest side of the network input (rounded up to a multiple of 32);
        max_det: at most this many boxes (the highest scores).
        channel_order: None = the official pipeline's order for this model ('bgr' for the
            MobileSAMv2 object-aware model, see :func:`official_channel_order`).

    Returns:
        boxes (N, 4) float32 x0, y0, x1, y1 in original pixels, scores (N,) float32, by
        decreasing score.
    """
    check_thresholds(conf, iou, max_det)
    order = channel_order or official_channel_order(detector)
    x, geo = model_input(image, imgsz, order)
    pred, _ = run_network(detector, x, masks=False)
    boxes, scores = detector_postprocess(pred[0], geo, conf, iou, max_det, _num_classes(detector))
    return boxes.numpy().astype(np.float32), scores.numpy().astype(np.float32)


def _num_classes(model) -> int:
    head = getattr(model, "head", None)
    return int(getattr(head, "nc", 1))

"""Low-res decoder output -> kept candidates, a few masks at a time (bounded memory)."""
from __future__ import annotations

import numpy as np
import torch

from ..detection.boxes import masks_to_boxes
from ..interactive import Predictor
from .candidates import Candidates
from .masks import encode_batch, stability_score
from .parallel import check_cancel

#: Full-resolution float32 logits upsampled at once: room for 64 masks of a 1024 x 1024 image
#: (the default chunk of 16 applies), 4 of a 4096 x 4096 one.  Results do not depend on it.
UPSAMPLE_BUDGET_BYTES = 256 << 20


def fit_chunk(chunk: int, image_shape: tuple[int, int]) -> int:
    """At most ``chunk`` masks, and no more than the budget allows at ``image_shape`` (H, W)."""
    per_mask = 4 * int(image_shape[0]) * int(image_shape[1])
    return max(1, min(int(chunk), UPSAMPLE_BUDGET_BYTES // max(per_mask, 1)))


def candidates_from_lowres(predictor: Predictor, low_res: torch.Tensor, iou: torch.Tensor,
                           crop_box, orig_size, stability_thresh: float, stability_offset: float,
                           points: np.ndarray | None = None, prompt_boxes: np.ndarray | None = None,
                           chunk: int = 16, cancel=None) -> Candidates:
    """Upsample (n, h, w) low-res logits of the predictor's current image (a crop of the
    original at ``crop_box`` x0, y0, x1, y1), filter by stability and crop edges, and store
    the masks compactly in original-image coordinates.

    ``points`` (n, 2) / ``prompt_boxes`` (n, 4) are the prompts in original pixels;
    ``cancel`` (an Event) is checked between chunks.
    """
    n = len(low_res)
    points = np.full((n, 2), np.nan) if points is None else np.asarray(points, dtype=float)
    prompt_boxes = np.full((n, 4), np.nan) if prompt_boxes is None else np.asarray(prompt_boxes, float)
    parts = []
    for idx in torch.arange(n).split(fit_chunk(chunk, predictor.original_size)):
        check_cancel(cancel)
        rows = idx.numpy()
        parts.append(_chunk(predictor, low_res[idx], iou[idx], points[rows], prompt_boxes[rows],
                            crop_box, orig_size, stability_thresh, stability_offset))
    return Candidates.concat(parts)


def _chunk(predictor, low_res, iou, points, prompt_boxes, crop_box, orig_size,
           stability_thresh, stability_offset) -> Candidates:
    threshold = predictor.model.mask_threshold
    logits = predictor.upsample(low_res, return_logits=True)  # (n, h_crop, w_crop)
    stability = stability_score(logits, threshold, stability_offset)
    keep = stability >= stability_thresh if stability_thresh > 0 else torch.ones_like(stability, dtype=torch.bool)
    masks = logits[keep] > threshold
    del logits
    x0, y0 = int(crop_box[0]), int(crop_box[1])
    boxes = masks_to_boxes(masks) + torch.tensor([x0, y0, x0, y0])
    sel = torch.nonzero(keep).flatten()
    inside = ~near_crop_edge(boxes, crop_box, orig_size)
    masks, boxes, sel = masks[inside], boxes[inside], sel[inside]
    rows = sel.numpy()
    return Candidates(
        masks=encode_batch(masks, offset=(y0, x0), shape=orig_size),
        boxes=boxes.float(), iou=iou[sel].float(), stability=stability[sel].float(),
        points=points[rows] + np.array([x0, y0]), prompt_boxes=prompt_boxes[rows],
        crop_boxes=np.tile(np.asarray(crop_box, dtype=np.int64), (len(rows), 1)),
    )


def near_crop_edge(boxes: torch.Tensor, crop_box, orig_size, atol: float = 20.0) -> torch.Tensor:
    """True for boxes touching a crop edge that is not an image edge (cut-off objects)."""
    crop_t = torch.as_tensor(crop_box, dtype=torch.float)
    orig_t = torch.tensor([0, 0, orig_size[1], orig_size[0]], dtype=torch.float)
    boxes = boxes.float()
    near_crop = torch.isclose(boxes, crop_t[None, :], atol=atol, rtol=0)
    near_image = torch.isclose(boxes, orig_t[None, :], atol=atol, rtol=0)
    return torch.any(near_crop & ~near_image, dim=1)

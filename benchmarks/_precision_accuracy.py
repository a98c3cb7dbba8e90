"""bf16 against fp32 for ``bench_precision.py``: the accuracy columns of its table.

Promptable models: relative error (Frobenius) of the embedding, and the IoU of every
candidate mask of 9 single-point prompts (a 3 x 3 grid over the image, multimask) against
the fp32 masks.  YOLO models: relative error of the head's scores (and mask coefficients),
largest box coordinate difference in pixels.  On the parity set's natural image (chelsea) when ../shared is present,
else on seeded noise; with synthesized or random weights the logits hover near 0 over large
areas, so these are lower bounds of what real checkpoints give
(``tests/test_precision_accuracy.py`` holds the CI bounds on the parity prompts).
"""
from __future__ import annotations

import numpy as np
import torch

import napari_segany as nsa
from bench_core import PARITY
from napari_segany.engine.detection import yolo as D
from napari_segany.models.registry import PROMPTABLE


def accuracy_image() -> np.ndarray:
    path = PARITY / "images" / "skimage_chelsea.png"
    if path.exists():
        from PIL import Image

        return np.array(Image.open(path).convert("RGB"))
    return np.random.default_rng(1).integers(0, 256, (300, 451, 3), dtype=np.uint8)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def accuracy(fp32, bf16, image: np.ndarray) -> dict:
    """Promptable: {"rel": the embedding's relative error, "iou_median", "iou_min"}; YOLO:
    {"rel": relative error of the scores (and mask coefficients), "box_px": the largest box
    coordinate difference in input pixels}."""
    if fp32.spec.task != PROMPTABLE:
        order, masks = D.official_channel_order(fp32), fp32.spec.task != "detector"
        x = D.model_input(image, 1024, order)[0]
        ref = D.run_network(fp32, x, masks=masks)[0]  # (1, 4 + classes [+ coefficients], N)
        low = D.run_network(bf16, x, masks=masks)[0]
        return {"rel": _rel(low[:, 4:], ref[:, 4:]),  # scores (and mask coefficients)
                "box_px": float((low[:, :4].float() - ref[:, :4].float()).abs().max())}
    ref, low = nsa.Predictor(fp32), nsa.Predictor(bf16)
    ref.set_image(image)
    low.set_image(image)
    h, w = image.shape[:2]
    ious = []
    for y in (h / 4, h / 2, 3 * h / 4):
        for x in (w / 4, w / 2, 3 * w / 4):
            prompt = dict(point_coords=np.array([[x, y]]), point_labels=np.array([1]))
            masks32 = ref.predict(**prompt)[0]
            masks16 = low.predict(**prompt)[0]
            ious += [_iou(m16, m32) for m16, m32 in zip(masks16, masks32)]
    return {"rel": _rel(low.features, ref.features), "iou_median": float(np.median(ious)),
            "iou_min": float(min(ious))}


def accuracy_cells(row: dict) -> str:
    """The table's accuracy cells: relative error | mask IoU median / min."""
    acc = row.get("accuracy")
    if acc is None:
        return " | "
    ious = (f"{acc['iou_median']:.3f} / {acc['iou_min']:.3f}" if "iou_median" in acc
            else f"boxes within {acc['box_px']:.2f} px (scores: rel. error)")
    return f"{acc['rel']:.4f} | {ious}"

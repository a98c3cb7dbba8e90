"""Everything-mode masks of a bf16 model against its fp32 model (issue 19 item 6).

Both runs use one embedding (so only the decoder differs) and the parity weights; a mask
is matched when the other run has a mask with IoU >= :data:`MATCH_IOU`.  Used by
tests/test_everything_bf16.py and by ``python tests/_bf16_everything.py`` (the table over
every parity image, with the figures docs quote).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from PIL import Image

import napari_segany as nsa
from napari_segany.models.precision import set_encoder_precision

MATCH_IOU = 0.9


def mask_ious(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """(len(a), len(b)) IoU of bool masks, by matrix products of the flattened masks."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    fa = torch.as_tensor(np.stack(a).reshape(len(a), -1), dtype=torch.float32)
    fb = torch.as_tensor(np.stack(b).reshape(len(b), -1), dtype=torch.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return (inter / union.clamp(min=1)).numpy()


def match_stats(fp32: list[np.ndarray], bf16: list[np.ndarray]) -> dict:
    """Fractions of fp32 / bf16 masks matched by the other side, and the IoU of each fp32
    mask's best bf16 match (median, min) over the matched ones."""
    ious = mask_ious(fp32, bf16)
    best_a = ious.max(1) if ious.size else np.zeros(len(fp32))
    best_b = ious.max(0) if ious.size else np.zeros(len(bf16))
    matched = best_a[best_a >= MATCH_IOU]
    return {"n_fp32": len(fp32), "n_bf16": len(bf16),
            "fp32_matched": float((best_a >= MATCH_IOU).mean()) if len(fp32) else 1.0,
            "bf16_matched": float((best_b >= MATCH_IOU).mean()) if len(bf16) else 1.0,
            "iou_median": float(np.median(matched)) if matched.size else float("nan"),
            "iou_min": float(matched.min()) if matched.size else float("nan")}


def model_pair(name: str, state_dict: dict):
    """(fp32 model, bf16 model) of one set of weights: the bf16 one a converted copy."""
    model = nsa.load_model(name, checkpoint=state_dict, device="cpu")
    return model, set_encoder_precision(copy.deepcopy(model), "bf16")


def compare(models, image: np.ndarray, method: str = "grid", detector=None, embedding=None,
            **params) -> dict:
    """match_stats of ``segment_everything`` with the fp32 and the bf16 model of ``models``
    on one embedding of ``image`` (default: the fp32 model's)."""
    fp32, bf16 = models
    if embedding is None:
        embedding = nsa.Predictor(fp32).encode(image)
    masks = [[r["segmentation"] for r in nsa.segment_everything(
        image, model, method, detector=detector, embedding=embedding, **params).records]
        for model in (fp32, bf16)]
    return match_stats(*masks)


def read_image(path) -> np.ndarray:
    return np.array(Image.open(path).convert("RGB"))


def _table(names=("mobile_sam", "sam_vit_b"), max_det: int = 64) -> None:
    """Print match_stats for every parity image, grid (the README's 8x8 AMG parameters,
    then its candidates without filters) and object-aware boxes."""
    from conftest import _load_synth
    from _everything import DETECTOR_FILE
    from _paths import PARITY
    from test_everything_grid_parity import amg_params

    synth = _load_synth()
    detector = nsa.load_model("mobilesamv2_objectaware", checkpoint=DETECTOR_FILE, device="cpu")
    for name in names:
        state = synth.synth_state_dict(synth.load_schema(PARITY / name / "schema.json"), seed=0)
        models = model_pair(name, state)
        params = amg_params((PARITY / name / "README.md").read_text())
        runs = {"grid": ("grid", params),
                "grid, no filters": ("grid", {**params, "pred_iou_thresh": 0.0,
                                              "stability_score_thresh": 0.0}),
                f"boxes (max_det {max_det})": ("object_aware", {"max_det": max_det})}
        for path in sorted((PARITY / "images").glob("*.png")):
            image = read_image(path)
            embedding = nsa.Predictor(models[0]).encode(image)
            for label, (method, kwargs) in runs.items():
                stats = compare(models, image, method, detector if method == "object_aware"
                                else None, embedding, **kwargs)
                print(f"| {name} | {path.stem} | {label} | " + " | ".join(
                    f"{v:.4f}" if isinstance(v, float) else str(v) for v in stats.values()) + " |",
                    flush=True)


if __name__ == "__main__":
    print("| model | image | prompts | fp32 masks | bf16 masks | fp32 matched | bf16 matched "
          "| IoU median | IoU min |\n|---|---|---|---|---|---|---|---|---|")
    _table()

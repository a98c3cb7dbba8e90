"""Parity of our SAM 2.1 Hiera-T with the official ``SAM2ImagePredictor`` (sam2 1.1.0).

Driver (engine-free, what phase 2's ``Predictor`` will do): the registry's transform
(``stretch_antialias``: /255, antialiased bilinear stretch to 1024, ImageNet mean/std;
prompts x / W * 1024), ``model.encode`` once per image, ``model.decode`` per run, logits
bilinear straight to (H, W), returned low-res logits clamped to [-32, 32] as the official
``predict``.  Every array of the README's image case is compared.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from _sam2_case import load_case_model, load_npz, max_abs
from napari_segany.engine.interactive.transforms import transform_for
from napari_segany.models.sam2.keys import map_sam2_keys

pytestmark = pytest.mark.parity

IMAGES = {"chelsea": "skimage_chelsea.png", "cell": "skimage_cell_rgb.png"}
RUNS = ("pos1_mm", "pos1_single", "pts2_mm", "pts2_single", "box_mm", "box_single",
        "boxpt_mm", "boxpt_single")
LOW_RES_LIMIT = 32.0  # official predict(): torch.clamp(low_res_masks, -32.0, 32.0)


@pytest.fixture(scope="module")
def model(synth_state_dict, tmp_path_factory):
    return load_case_model(synth_state_dict, tmp_path_factory.mktemp("sam2_weights"))


@pytest.fixture(scope="module")
def case(parity_dir):
    return load_npz(parity_dir)


@pytest.fixture(scope="module")
def encoded(model, parity_dir):
    """image name -> (features, (H, W)); the 1024 x 1024 encoder runs once per image."""
    transform = transform_for(model.spec)
    out = {}
    for name, file in IMAGES.items():
        image = np.array(Image.open(parity_dir / "images" / file).convert("RGB"))
        x, _ = transform.to_model_input(image)
        with torch.inference_mode():
            out[name] = (model.encode(x), image.shape[:2])
    return out


def predict(model, features, hw, npz, prefix):
    """One README run through the driver -> (full-res logits, iou, clamped low-res logits)."""
    transform = transform_for(model.spec)
    coords = labels = box = None
    if f"{prefix}__point_coords" in npz:
        coords = torch.from_numpy(transform.apply_coords(npz[f"{prefix}__point_coords"], hw))[None]
        labels = torch.as_tensor(npz[f"{prefix}__point_labels"])[None]
    if f"{prefix}__box" in npz:
        box = torch.from_numpy(transform.apply_boxes(npz[f"{prefix}__box"], hw)).float()
    with torch.inference_mode():
        low, iou = model.decode(features, coords, labels, box, None,
                                bool(npz[f"{prefix}__multimask_output"]))
        full = transform.postprocess_masks(low, (1024, 1024), hw)
    return full[0].numpy(), iou[0].numpy(), low[0].clamp(-LOW_RES_LIMIT, LOW_RES_LIMIT).numpy()


@pytest.mark.parametrize("image", IMAGES)
def test_image_features(encoded, case, image):
    features, hw = encoded[image]
    assert tuple(case[f"{image}__orig_hw"]) == hw
    # README: "image_embed (float16 storage, max rounding 0.00391): atol = 0.006"
    assert max_abs(features[0], case[f"{image}__image_embed"]) <= 0.006
    # README: "high_res_feats_0/1 (float16 storage, max rounding 0.00195): atol = 0.003"
    assert max_abs(features[1], case[f"{image}__high_res_feats_0"]) <= 0.003
    assert max_abs(features[2], case[f"{image}__high_res_feats_1"]) <= 0.003


def _check_masks(full: np.ndarray, case: dict, prefix: str) -> None:
    """README: "allow at most 0.1 % of the pixels of a mask to differ (logits near 0 flip)"."""
    width = full.shape[-1]
    expected = np.unpackbits(case[f"{prefix}__masks_packbits"], axis=-1, count=width).astype(bool)
    flipped = (full > 0) != expected
    assert flipped.reshape(len(full), -1).mean(axis=-1).max() <= 1e-3
    assert np.all(np.abs(full[flipped]) < 1e-3), "a pixel flipped away from the 0 level"


@pytest.mark.parametrize("image", IMAGES)
@pytest.mark.parametrize("run", RUNS)
def test_predict_run(model, encoded, case, image, run):
    features, hw = encoded[image]
    prefix = f"{image}__{run}"
    full, iou, low = predict(model, features, hw, case, prefix)
    assert low.shape == case[f"{prefix}__low_res_logits"].shape
    # README: "low_res_logits: atol = 0.0002", "iou_predictions: atol = 1e-05",
    # "mask_logits_sub8: atol = 0.0001"
    assert max_abs(low, case[f"{prefix}__low_res_logits"]) <= 2e-4
    assert max_abs(iou, case[f"{prefix}__iou_predictions"]) <= 1e-5
    assert max_abs(full[..., ::8, ::8], case[f"{prefix}__mask_logits_sub8"]) <= 1e-4
    _check_masks(full, case, prefix)
    if f"{prefix}__mask_logits_fullres" in case:
        # README: "mask_logits_fullres (float16 storage, max rounding 0.00384): atol = 0.006"
        assert max_abs(full, case[f"{prefix}__mask_logits_fullres"]) <= 0.006


def test_case_covers_both_single_mask_paths(case):
    """README step 6: the stability fallback fires in some single-mask runs and not in
    others; both must be in the reference for the runs above to test both paths."""
    fallback = []
    for image in IMAGES:
        for prompt in ("pos1", "pts2", "box", "boxpt"):
            single = case[f"{image}__{prompt}_single__low_res_logits"][0]
            multi = case[f"{image}__{prompt}_mm__low_res_logits"]
            best = multi[np.argmax(case[f"{image}__{prompt}_mm__iou_predictions"])]
            fallback.append(bool(np.array_equal(single, best)))
    assert any(fallback) and not all(fallback)


def test_state_dict_is_the_official_schema(model, synth, parity_dir):
    """Every key and shape of schema.json, nothing else (after the key mapper's renames)."""
    schema = synth.load_schema(parity_dir / "sam2.1_hiera_t" / "schema.json")
    official = map_sam2_keys({k: torch.empty(0) for k, _, _ in schema})
    ours = model.state_dict()
    assert sorted(ours) == sorted(official)
    shapes = {mapped: shape for mapped, (_, shape, _) in zip(official, schema)}
    assert all(list(ours[k].shape) == shapes[k] for k in ours)

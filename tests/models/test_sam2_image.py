"""Parity of our SAM 2.1 Hiera-T with the official ``SAM2ImagePredictor`` (sam2 1.1.0).

Two drivers on the same features (the 1024 x 1024 encoder runs once per image, in the
module-scoped ``encoded`` fixture, through ``Predictor.encode``: the registry's transform
``stretch_antialias`` then ``model.encode``):

* the network alone: ``model.decode`` per run, prompts through the transform (x / W * 1024),
  logits bilinear straight to (H, W), returned low-res logits clamped to [-32, 32] as the
  official ``predict``;
* ``napari_segany.Predictor`` (from ``predictor_for``), exactly as a user calls it:
  ``predict(point_coords, point_labels, box, multimask_output, return_logits=True)``.

Every array of the README's image case is compared, for every run, by both drivers.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import napari_segany as nsa
from _sam2_case import load_case_model, load_npz, max_abs
from napari_segany.engine.images import to_uint8_rgb
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
def images(parity_dir):
    return {name: np.array(Image.open(parity_dir / "images" / file).convert("RGB"))
            for name, file in IMAGES.items()}


@pytest.fixture(scope="module")
def encoded(model, images):
    """image name -> its Embedding (three levels); the 1024^2 encoder runs once per image."""
    predictor = nsa.Predictor(model)
    return {name: predictor.encode(image) for name, image in images.items()}


@pytest.fixture(scope="module")
def predictors(model, images, encoded):
    """image name -> the Predictor a user gets for it, on the shared embedding (set_image
    would encode ``to_uint8_rgb(image)``, which is the image itself for uint8 RGB)."""
    out = {}
    for name, image in images.items():
        predictor = nsa.predictor_for(model, image.shape)
        assert type(predictor) is nsa.Predictor
        assert np.array_equal(to_uint8_rgb(image), image)
        predictor.set_embedding(encoded[name])
        out[name] = predictor
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
    features, hw = encoded[image].levels, encoded[image].original_size
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
    prefix = f"{image}__{run}"
    full, iou, low = predict(model, encoded[image].levels, encoded[image].original_size, case,
                             prefix)
    _check_run(full, iou, low, case, prefix)


@pytest.mark.parametrize("image", IMAGES)
@pytest.mark.parametrize("run", RUNS)
def test_predictor_run(predictors, case, image, run):
    """The same run through ``napari_segany.Predictor.predict`` (original-pixel prompts)."""
    prefix = f"{image}__{run}"
    get = lambda key: case.get(f"{prefix}__{key}")  # noqa: E731
    full, iou, low = predictors[image].predict(
        point_coords=get("point_coords"), point_labels=get("point_labels"), box=get("box"),
        multimask_output=bool(get("multimask_output")), return_logits=True)
    assert full.dtype == np.float32 and np.abs(low).max() <= LOW_RES_LIMIT
    _check_run(full, iou, low, case, prefix)
    masks, _, _ = predictors[image].predict(
        point_coords=get("point_coords"), point_labels=get("point_labels"), box=get("box"),
        multimask_output=bool(get("multimask_output")))
    assert masks.dtype == bool and np.array_equal(masks, full > 0)


def test_predict_torch_batches_prompts_in_the_model_frame(predictors, case):
    """``predict_torch`` (as SamPredictor: prompts already in the 1024 frame, B sets at once)
    gives ``predict``'s outputs, low-res logits clamped the same way."""
    predictor, prefix = predictors["cell"], "cell__boxpt_mm"
    coords = predictor.transform.apply_coords_torch(
        torch.as_tensor(case[f"{prefix}__point_coords"]), predictor.original_size)
    box = predictor.transform.apply_boxes_torch(torch.as_tensor(case[f"{prefix}__box"]),
                                                predictor.original_size)
    labels = torch.as_tensor(case[f"{prefix}__point_labels"])
    masks, iou, low = predictor.predict_torch(coords[None].expand(2, -1, -1),
                                              labels[None].expand(2, -1), box.expand(2, -1),
                                              return_logits=True)
    assert masks.shape == (2, 3, 660, 550) and low.abs().max() <= LOW_RES_LIMIT
    # README: "low_res_logits: atol = 0.0002", "iou_predictions: atol = 1e-05"
    assert max_abs(low[1], case[f"{prefix}__low_res_logits"]) <= 2e-4
    assert max_abs(iou[1], case[f"{prefix}__iou_predictions"]) <= 1e-5


def _check_run(full, iou, low, case, prefix):
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

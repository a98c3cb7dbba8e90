"""End-to-end parity with the official SamPredictor: official-format checkpoint file ->
load_model -> Predictor, for SAM ViT-B and MobileSAM (../shared/parity/<case>/README.md).

Tolerances (each case README, "Suggested checks"): embedding atol 5e-3 rtol 1e-3 against the
float16-stored reference; low_res_logits atol 1e-4; iou_predictions atol 1e-5;
mask_logits_sub8 atol 5e-4; at most 0.1 % of the pixels of a mask may differ.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import napari_segany as nsa

pytestmark = pytest.mark.parity

CASES = ("sam_vit_b", "mobile_sam")
IMAGES = {"chelsea": "skimage_chelsea.png", "cell": "skimage_cell_rgb.png"}
SINGLE_RUNS = ("pos1_mm", "pos1_single", "pts3_mm", "pts3_single", "box_mm", "box_single",
               "boxneg_mm", "refine_single")


@pytest.fixture(scope="module", params=CASES)
def case(request, parity_dir, synth_state_dict, tmp_path_factory, parity_embedding):
    """(name, npz, {image: Predictor with the image set}) for one case: the embeddings are
    the session's (``parity_embedding``: ``Predictor.set_image`` with these weights)."""
    name = request.param
    path = tmp_path_factory.mktemp(name) / f"{name}.pth"
    torch.save(synth_state_dict(name), path)  # the official on-disk layout: a plain state dict
    model = nsa.load_model(name, checkpoint=path, device="cpu")
    npz = np.load(parity_dir / name / "case.npz")
    predictors = {}
    for image_name in IMAGES:
        predictor = nsa.Predictor(model)
        predictor.set_embedding(parity_embedding(name, image_name))
        predictors[image_name] = predictor
    return name, npz, predictors


def _unpack(packed: np.ndarray, width: int) -> np.ndarray:
    return np.unpackbits(packed, axis=-1, count=width).astype(bool)


def _check_masks(logits: np.ndarray, npz, prefix: str) -> None:
    width = logits.shape[-1]
    expected = _unpack(npz[f"{prefix}__masks_packbits"], width)
    flipped = ((logits > 0) != expected).reshape(-1, expected.shape[-2] * expected.shape[-1])
    assert flipped.mean(axis=-1).max() <= 1e-3
    np.testing.assert_allclose(logits[..., ::8, ::8], npz[f"{prefix}__mask_logits_sub8"], atol=5e-4, rtol=0)


@pytest.mark.parametrize("image", IMAGES)
def test_embedding_and_sizes(case, image):
    _, npz, predictors = case
    predictor = predictors[image]
    expected = npz[f"{image}__image_embedding"].astype(np.float32)
    np.testing.assert_allclose(predictor.features.numpy(), expected, atol=5e-3, rtol=1e-3)
    assert predictor.original_size == tuple(npz[f"{image}__original_size"])
    assert predictor.input_size == tuple(npz[f"{image}__input_size"])


def _runs(npz, image):
    return [r for r in SINGLE_RUNS if f"{image}__{r}__low_res_logits" in npz.files]


@pytest.mark.parametrize("image", IMAGES)
def test_predict_runs(case, image):
    _, npz, predictors = case
    predictor = predictors[image]
    runs = _runs(npz, image)
    assert runs, "the case lists no runs for this image"
    for run in runs:
        p = f"{image}__{run}"
        kwargs = {"multimask_output": bool(npz[f"{p}__multimask_output"]), "return_logits": True}
        if f"{p}__point_coords" in npz.files:
            kwargs["point_coords"] = npz[f"{p}__point_coords"]
            kwargs["point_labels"] = npz[f"{p}__point_labels"]
            np.testing.assert_array_equal(
                predictor.apply_coords(kwargs["point_coords"]).astype(np.float32),
                npz[f"{p}__point_coords_model"])
        if f"{p}__box" in npz.files:
            kwargs["box"] = npz[f"{p}__box"]
        if f"{p}__mask_input_from" in npz.files:
            source = f"{image}__{str(npz[f'{p}__mask_input_from']).split('__')[-1]}"
            index = int(npz[f"{p}__mask_input_index"])
            kwargs["mask_input"] = npz[f"{source}__low_res_logits"][index][None]
        logits, iou, low_res = predictor.predict(**kwargs)
        np.testing.assert_allclose(low_res, npz[f"{p}__low_res_logits"], atol=1e-4, rtol=0, err_msg=run)
        np.testing.assert_allclose(iou, npz[f"{p}__iou_predictions"], atol=1e-5, rtol=0, err_msg=run)
        _check_masks(logits, npz, p)


@pytest.mark.parametrize("image", IMAGES)
def test_batched_boxes_predict_torch(case, image):
    _, npz, predictors = case
    predictor = predictors[image]
    p = f"{image}__boxbatch"
    boxes = torch.tensor(npz[f"{p}__boxes"], dtype=torch.float32)
    boxes_model = predictor.transform.apply_boxes_torch(boxes, predictor.original_size)
    np.testing.assert_array_equal(boxes_model.numpy(), npz[f"{p}__boxes_model"])
    masks, iou, low_res = predictor.predict_torch(
        None, None, boxes=boxes_model, multimask_output=False, return_logits=True)
    np.testing.assert_allclose(low_res.numpy(), npz[f"{p}__low_res_logits"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(iou.numpy(), npz[f"{p}__iou_predictions"], atol=1e-5, rtol=0)
    _check_masks(masks.numpy(), npz, p)


def test_fast_path_matches_predict(case):
    """decode_lowres + upsample of the best candidate = the same mask predict() returns."""
    _, npz, predictors = case
    predictor = predictors["cell"]
    point = {"point_coords": [[275, 330]], "point_labels": [1]}
    masks, scores, _ = predictor.predict(**point)
    low_res, iou = predictor.decode_lowres(**point)
    best = int(iou[0].argmax())
    fast = predictor.upsample(low_res[0, best]).numpy()
    np.testing.assert_array_equal(fast, masks[int(np.argmax(scores))])

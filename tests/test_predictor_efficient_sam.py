"""EfficientSAM end to end through the public API: an official-layout file ({'model': sd})
-> load_model -> Predictor (stretch preprocessing, bicubic upsampling), against
../shared/parity/efficient_sam_vit{t,s}/case.npz.

Tolerances (case README "Suggested checks", end-to-end rows): lowres_logits rtol/atol 1e-4;
iou 1e-4; best_logits_sub4 1e-3; masks: at most 0.1 % of a mask's pixels differ.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import napari_segany as nsa
from napari_segany.engine.errors import PromptError

pytestmark = pytest.mark.parity

IMAGES = {"chelsea": "skimage_chelsea.png", "coins_x4": "skimage_coins_x4nn_rgb.png"}


@pytest.fixture(scope="module", params=("efficient_sam_vitt", "efficient_sam_vits"))
def case(request, parity_dir, synth_state_dict, tmp_path_factory, parity_embedding):
    name = request.param
    path = tmp_path_factory.mktemp(name) / f"{name}.pt"
    torch.save({"model": synth_state_dict(name)}, path)
    model = nsa.load_model(name, checkpoint=path, device="cpu")
    npz = np.load(parity_dir / name / "case.npz")
    predictors = {}
    for image in IMAGES:  # the session's set_image of these weights (computed once)
        predictor = nsa.Predictor(model)
        predictor.set_embedding(parity_embedding(name, image))
        predictors[image] = predictor
    return npz, predictors


def _queries(npz, prefix):
    """Official (points, labels) queries -> Predictor keyword arguments, one dict per query."""
    points, labels = npz[f"{prefix}__points"][0], npz[f"{prefix}__labels"][0]
    for pts, lab in zip(points, labels):
        kwargs = {}
        corners = pts[np.isin(lab, (2, 3))]
        if len(corners):
            kwargs["box"] = corners.reshape(-1)
        clicks = np.isin(lab, (0, 1))
        if clicks.any():
            kwargs["point_coords"], kwargs["point_labels"] = pts[clicks], lab[clicks]
        yield kwargs


@pytest.mark.parametrize("image", IMAGES)
def test_embedding(case, image):
    npz, predictors = case
    expected = npz[f"{image}__embeddings"].astype(np.float32)
    np.testing.assert_allclose(predictors[image].features.numpy(), expected, rtol=2e-3, atol=1e-3)


@pytest.mark.parametrize("image", IMAGES)
def test_predict_every_prompt_set(case, image):
    npz, predictors = case
    predictor = predictors[image]
    prompt_sets = sorted({k.split("__")[1] for k in npz.files
                          if k.startswith(f"{image}__") and k.endswith("__lowres_logits")})
    assert prompt_sets
    for p in prompt_sets:
        prefix = f"{image}__{p}"
        for q, kwargs in enumerate(_queries(npz, prefix)):
            logits, iou, low_res = predictor.predict(multimask_output=True, return_logits=True, **kwargs)
            np.testing.assert_allclose(low_res, npz[f"{prefix}__lowres_logits"][0, q], rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(iou, npz[f"{prefix}__iou"][0, q], rtol=1e-4, atol=1e-4)
            best = int(np.argmax(iou))
            np.testing.assert_allclose(logits[best, ::4, ::4], npz[f"{prefix}__best_logits_sub4"][0, q],
                                       rtol=1e-3, atol=1e-3)
            width = logits.shape[-1]
            expected = np.unpackbits(npz[f"{prefix}__masks_packed"][0, q], axis=-1, count=width).astype(bool)
            flipped = ((logits >= 0) != expected).reshape(3, -1).mean(axis=1)
            assert flipped.max() <= 1e-3, p


def test_no_mask_prompt_and_point_limit(case):
    _, predictors = case
    predictor = predictors["chelsea"]
    with pytest.raises(PromptError, match="mask"):
        predictor.predict(point_coords=[[10, 10]], point_labels=[1], mask_input=np.zeros((256, 256)))
    with pytest.raises(ValueError, match="6"):
        predictor.predict(point_coords=[[i * 10, 10] for i in range(1, 8)], point_labels=[1] * 7)

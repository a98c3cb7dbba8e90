"""Grid everything mode = SAM's SamAutomaticMaskGenerator (../shared/parity/<case>/amg.npz).

Suggested AMG check (case README): identical n_masks, identical order (point_coords exact),
identical bbox_xywh; predicted_iou atol 1e-5; stability_score atol 1e-4; area within 0.1 %;
at most 0.1 % of the pixels of each mask differ.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

import napari_segany as nsa

pytestmark = pytest.mark.parity


def amg_params(readme: str) -> dict:
    """The generator parameters: the JSON block of the README's AMG section."""
    section = readme[readme.index("## Automatic mask generation"):]
    block = re.search(r"```\s*(\{.*?\})\s*```", section, re.S).group(1)
    params = json.loads(block)
    params.pop("output_mode")
    return params


@pytest.fixture(scope="module", params=("mobile_sam", "sam_vit_b"))
def amg_case(request, parity_dir, synth_state_dict, parity_embedding):
    name = request.param
    model = nsa.load_model(name, checkpoint=synth_state_dict(name), device="cpu")
    npz = np.load(parity_dir / name / "amg.npz")
    image = np.array(Image.open(parity_dir / "images" / "skimage_chelsea.png"))
    params = amg_params((parity_dir / name / "README.md").read_text())
    embedding = parity_embedding(name, "chelsea")  # shared by the runs, as one set_image
    return model, npz, image, params, embedding


def _run(amg_case, **overrides):
    model, npz, image, params, embedding = amg_case
    return nsa.segment_everything(image, model, method="grid", embedding=embedding,
                                  **{**params, **overrides})


@pytest.fixture(scope="module")
def default_run(amg_case):
    """The run with the README's parameters, once per case: two tests check it."""
    return _run(amg_case)


def _compare(result, npz, prefix: str, with_masks: bool = True) -> None:
    records = result.records
    assert len(records) == len(npz[f"{prefix}__area"])
    np.testing.assert_array_equal([r["point_coords"][0] for r in records], npz[f"{prefix}__point_coords"])
    np.testing.assert_array_equal([r["bbox"] for r in records], npz[f"{prefix}__bbox_xywh"])
    np.testing.assert_allclose([r["predicted_iou"] for r in records], npz[f"{prefix}__predicted_iou"], atol=1e-5)
    np.testing.assert_allclose([r["stability_score"] for r in records], npz[f"{prefix}__stability_score"], atol=1e-4)
    np.testing.assert_allclose([r["area"] for r in records], npz[f"{prefix}__area"], rtol=1e-3)
    if with_masks:
        width = result.image_shape[1]
        expected = np.unpackbits(npz[f"{prefix}__segmentations_packbits"], axis=-1, count=width).astype(bool)
        for record, mask in zip(records, expected):
            assert (record["segmentation"] != mask).mean() <= 1e-3
        np.testing.assert_array_equal([r["crop_box"] for r in records], npz[f"{prefix}__crop_box_xywh"])


def test_grid_matches_official_generator(amg_case, default_run):
    _compare(default_run, amg_case[1], "amg")


def test_grid_with_default_nms(amg_case):
    _compare(_run(amg_case, box_nms_thresh=0.7), amg_case[1], "amg_nms07")


def test_grid_candidates_without_filters(amg_case):
    result = _run(amg_case, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    _compare(result, amg_case[1], "amg_candidates", with_masks=False)


def test_labels_are_painted_smallest_on_top(default_run):
    result = default_run
    labels = result.labels
    assert labels.shape == result.image_shape and labels.dtype == np.int32
    smallest = int(np.argmin([r["area"] for r in result.records]))
    assert (labels[result.records[smallest]["segmentation"]] == smallest + 1).all()

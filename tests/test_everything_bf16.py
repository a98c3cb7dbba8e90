"""Everything mode of a bf16 model decodes its batches in bfloat16: its masks against the
float32 model's, on a parity image with the parity weights (../shared/parity), one shared
embedding.  The click path and float32 models stay float32 (test_precision*.py, parity).

Bounds: the measured figures (python tests/_bf16_everything.py; AMD EPYC AVX512-BF16,
torch 2.13) with a margin.  Random synthesized weights are a hard case (logits near 0 over
large areas), so real checkpoints match at least as well.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from _bf16_everything import compare, model_pair, read_image
from _everything import DETECTOR_FILE
from napari_segany.engine.everything.batch_network import batch_network
from test_everything_grid_parity import amg_params

pytestmark = pytest.mark.parity

MIN_MATCHED = 0.9  # fraction of masks matched at IoU >= 0.9, each way
MIN_IOU_MEDIAN = 0.98  # issue 19's mask IoU goal


@pytest.fixture(scope="module")
def mobile_sam_pair(synth_state_dict):
    return model_pair("mobile_sam", synth_state_dict("mobile_sam"))


@pytest.fixture(scope="module")
def chelsea(parity_dir, mobile_sam_pair):
    """The image and its fp32 embedding (computed once: the tests compare decoders)."""
    import napari_segany as nsa

    image = read_image(parity_dir / "images" / "skimage_chelsea.png")
    return image, nsa.Predictor(mobile_sam_pair[0]).encode(image)


def _check(stats: dict) -> None:
    assert stats["n_fp32"] > 0, stats
    assert stats["fp32_matched"] >= MIN_MATCHED and stats["bf16_matched"] >= MIN_MATCHED, stats
    assert stats["iou_median"] >= MIN_IOU_MEDIAN, stats


def test_grid_masks_match_fp32(mobile_sam_pair, chelsea, parity_dir):
    params = amg_params((parity_dir / "mobile_sam" / "README.md").read_text())  # 8 x 8 grid
    _check(compare(mobile_sam_pair, chelsea[0], "grid", embedding=chelsea[1], **params))


def test_box_masks_match_fp32(mobile_sam_pair, chelsea):
    import napari_segany as nsa

    detector = nsa.load_model("mobilesamv2_objectaware", checkpoint=DETECTOR_FILE, device="cpu")
    # a 320-px detector pass keeps the test quick; the boxes' decoding is what is compared
    _check(compare(mobile_sam_pair, chelsea[0], "object_aware", detector, chelsea[1],
                   max_det=16, imgsz=320))


def test_bf16_model_decodes_batches_in_bf16_and_returns_fp32(mobile_sam_pair):
    fp32, bf16 = mobile_sam_pair
    twin = batch_network(bf16)
    assert batch_network(fp32) is fp32  # float32 models: bit for bit as before
    assert twin is not bf16 and batch_network(bf16) is twin  # one twin per model
    assert twin.image_encoder is bf16.image_encoder  # shared, not copied
    assert bf16.mask_decoder.transformer.layers[0].mlp.lin1.weight.dtype == torch.float32
    assert twin.mask_decoder.transformer.layers[0].mlp.lin1.weight.dtype == torch.bfloat16
    assert twin.mask_decoder.iou_prediction_head.layers[0].weight.dtype == torch.float32
    with torch.inference_mode():
        low_res, iou = twin.decode(torch.randn(1, 256, 64, 64), boxes=torch.tensor([[10., 20, 300, 400]]),
                                   multimask_output=False)
    assert low_res.dtype == iou.dtype == torch.float32 and np.isfinite(low_res.numpy()).all()

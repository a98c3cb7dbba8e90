"""Helpers of the everything-mode tests: tiny promptable models with random weights, the
real-format synthesized detector / FastSAM files, and a FastSAM whose masks are not empty.

With random weights masks are noise-like: these helpers serve mechanics, not quality.
"""
from __future__ import annotations


import numpy as np
import torch

from _paths import PARITY
from napari_segany.models import registry
from napari_segany.models.registry import ModelSpec

DETECTOR_FILE = PARITY / "mobilesamv2_objectaware" / "ObjectAwareModel.synth-seed0.pt"
FASTSAM_FILE = PARITY / "fastsam_s" / "FastSAM-s.synth-seed0.pt"

#: Everything-mode settings for random weights: their scores are low and their masks overlap,
#: so keep every candidate.
RANDOM_WEIGHTS = dict(pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
NO_FILTERS = dict(min_area=0, max_area_fraction=None)

TINY_SAM_KWARGS = dict(embed_dim=64, depth=2, num_heads=2, global_attn_indexes=(1,), image_size=256)
TINY_SAM = ModelSpec(
    name="tiny_sam", family="sam", task=registry.PROMPTABLE,
    builder="napari_segany.models.sam.build:build_sam_vit", builder_kwargs=TINY_SAM_KWARGS,
    input_size=256, file_name="tiny_sam.pt", license="Apache-2.0 (test weights)",
    checkpoint_format="state_dict", description="Tiny SAM for tests (random weights)",
)
TINY_EFFICIENT_SAM = ModelSpec(
    name="tiny_efficient_sam", family="efficient_sam", task=registry.PROMPTABLE,
    builder="napari_segany.models.efficient_sam.build:build_efficient_sam",
    builder_kwargs=dict(encoder_patch_embed_dim=32, encoder_num_heads=2, image_size=256),
    input_size=256, file_name="tiny_efficient_sam.pt", license="Apache-2.0 (test weights)",
    checkpoint_format="efficient_sam", preprocessing="stretch",
    pixel_mean=registry.IMAGENET_MEAN_01, pixel_std=registry.IMAGENET_STD_01,
    supports_mask_input=False, description="Tiny EfficientSAM for tests",
)


def random_state_dict(spec: ModelSpec, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return spec.build().state_dict()


def load_tiny(spec: ModelSpec = TINY_SAM):
    from napari_segany.engine.weights import load_model

    return load_model(spec, checkpoint=random_state_dict(spec), device="cpu")


def load_random_yolo(name: str):
    """A YOLOv8-n with random weights in the layout of registry model ``name`` (FastSAM:
    mask prototypes; MobileSAMv2's detector: reg_max 26, none), loaded by the real loader."""
    from napari_segany.engine.weights import load_model
    from napari_segany.models.yolo.build import build_yolov8

    torch.manual_seed(0)
    fastsam = registry.get_spec(name).task == registry.INSTANCE
    net = build_yolov8(scale="n", reg_max=16 if fastsam else 26, has_proto=fastsam)
    return load_model(name, checkpoint=net.state_dict(), device="cpu")


PROTO_CHANNEL = 30


def visible_fastsam(model):
    """Make a synthesized FastSAM's masks non-empty: its random mask logits are all <= 0
    (parity README), so every object's coefficients become 10 on prototype 30 and 0 elsewhere:
    a mask is then where that prototype is positive inside the object's box (about half of
    the pixels of the seed-0 file on these images; most other prototypes are all <= 0)."""
    for level in model.head.cv4:
        conv = level[-1]
        with torch.no_grad():
            conv.weight.zero_()
            conv.bias.zero_()
            conv.bias[PROTO_CHANNEL] = 10.0
    return model


def cells_image(shape=(96, 128), seed: int = 0) -> np.ndarray:
    """Bright blobs on a noisy background, float32 (H, W)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(100, 10, shape).astype(np.float32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for cy, cx, r in ((25, 30, 10), (60, 90, 14), (70, 30, 8)):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] += 120
    return image

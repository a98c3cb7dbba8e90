"""MobileSAM builder: the Sam container around our TinyViT, registry wiring, contract shapes.

Encoder parity lives in ``test_tiny_vit.py``; these tests are cheap (256 x 256 models).
"""
from __future__ import annotations

import pytest
import torch

from napari_segany.models.mobile_sam import TINY_VIT_5M, build_mobile_sam
from napari_segany.models.registry import get_spec
from napari_segany.models.sam.sam import Sam
from napari_segany.models.tiny_vit import TinyViT


def test_registry_builds_our_mobile_sam():
    model = get_spec("mobile_sam").build()
    assert isinstance(model, Sam) and isinstance(model.image_encoder, TinyViT)
    assert model.image_size == 1024 and model.image_encoder.img_size == 1024
    enc = model.image_encoder
    assert [layer.depth for layer in enc.layers] == list(TINY_VIT_5M["depths"])
    assert enc.head.out_features == 1000  # kept: the official file has these keys


def test_encode_and_decode_shapes_small():
    model = build_mobile_sam(image_size=256).eval()
    x = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        emb = model.encode(x)
        assert emb.shape == (1, 256, 16, 16)
        logits, iou = model.decode(emb, point_coords=torch.tensor([[[100.0, 120.0]]]),
                                   point_labels=torch.tensor([[1]]))
    assert logits.shape == (1, 3, 64, 64) and iou.shape == (1, 3)


def test_fast_inference_flag_reaches_the_encoder():
    assert build_mobile_sam(image_size=256).image_encoder.fast_inference
    assert not build_mobile_sam(image_size=256, fast_inference=False).image_encoder.fast_inference


@pytest.mark.parity
def test_engine_key_mapping_loads_strictly(synth_state_dict):
    """The engine maps keys with ``map_sam_keys`` then loads strictly: the mapper must keep
    TinyViT's unused classifier keys, which our encoder has."""
    spec = get_spec("mobile_sam")
    model = spec.build()
    model.load_state_dict(spec.map_keys(synth_state_dict("mobile_sam")), strict=True)

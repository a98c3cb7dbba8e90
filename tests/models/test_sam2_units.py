"""Unit tests of the SAM 2 networks (no golden vectors; tiny or meta-device models)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from _sam2_tiny import TINY_SAM2, load_tiny_sam2
from napari_segany.engine.interactive.transforms import AntialiasStretchTransform, transform_for
from napari_segany.models.registry import get_spec
from napari_segany.models.sam.build import build_sam_vit
from napari_segany.models.sam2.hiera import window_partition, window_unpartition
from napari_segany.models.sam2.keys import map_sam2_keys
from napari_segany.models.sam2.position_encoding import axial_rope, rotate

#: Parameter counts of the official SAM 2.1 checkpoints (facebookresearch/sam2 README:
#: 38.9M, 46M, 80.8M, 224.4M), to the last parameter of our meta-device builds.
PARAMETERS = {"sam2.1_hiera_t": 38_962_498, "sam2.1_hiera_s": 46_060_354,
              "sam2.1_hiera_b+": 80_850_178, "sam2.1_hiera_l": 224_446_642}
TRUNK = {  # (blocks, channels per stage) of the official configs
    "sam2.1_hiera_t": (12, [768, 384, 192, 96]), "sam2.1_hiera_s": (16, [768, 384, 192, 96]),
    "sam2.1_hiera_b+": (24, [896, 448, 224, 112]), "sam2.1_hiera_l": (48, [1152, 576, 288, 144]),
}


@pytest.mark.parametrize("name", PARAMETERS)
def test_official_sizes_on_meta(name):
    with torch.device("meta"):
        model = get_spec(name).build()
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[name]
    blocks, channels = TRUNK[name]
    assert len(model.image_encoder.trunk.blocks) == blocks
    assert model.image_encoder.trunk.channel_list == channels
    assert model.image_encoder.neck.backbone_channel_list == channels


def test_key_mapper_renames_only_the_transformer_mlps():
    sd = {
        "sam_mask_decoder.transformer.layers.1.mlp.layers.0.weight": torch.zeros(1),
        "sam_mask_decoder.transformer.layers.1.mlp.layers.1.bias": torch.zeros(1),
        "image_encoder.trunk.blocks.0.mlp.layers.0.weight": torch.zeros(1),
        "obj_ptr_proj.layers.2.bias": torch.zeros(1),
    }
    mapped = map_sam2_keys({"model": sd})
    assert sorted(mapped) == sorted([
        "sam_mask_decoder.transformer.layers.1.mlp.lin1.weight",
        "sam_mask_decoder.transformer.layers.1.mlp.lin2.bias",
        "image_encoder.trunk.blocks.0.mlp.layers.0.weight",
        "obj_ptr_proj.layers.2.bias",
    ])
    with pytest.raises(ValueError, match="tensor"):
        map_sam2_keys({"model": {"image_encoder.x": 1.0}})


def test_box_corner_points_embed_like_boxes():
    """SAM 2 feeds a box as points labelled 2/3: same tokens as SAM's box embedding."""
    pe = build_sam_vit(64, 1, 2, (0,), image_size=256).prompt_encoder
    corners = torch.tensor([[[10.0, 20.0], [100.0, 200.0]]])
    as_points = pe._embed_points(corners, torch.tensor([[2, 3]]), pad=False)
    torch.testing.assert_close(as_points, pe._embed_boxes(corners.reshape(1, 4)))


def test_window_partition_round_trip_with_padding():
    x = torch.randn(2, 10, 13, 3)
    windows, padded = window_partition(x, 4)
    assert windows.shape == (2 * 3 * 4, 4, 4, 3) and padded == (12, 16)
    torch.testing.assert_close(window_unpartition(windows, 4, padded, (10, 13)), x)


def test_rope_repeats_over_memory_frames():
    rope = axial_rope(8, 4, 4)
    keys = torch.randn(1, 1, 3 * 16, 8)
    rotated = rotate(keys, rope)
    for f in range(3):
        torch.testing.assert_close(rotated[:, :, 16 * f:16 * (f + 1)], rotate(keys[:, :, 16 * f:16 * (f + 1)], rope))
    # a rotation keeps each pair's norm
    pairs = lambda t: t.reshape(*t.shape[:-1], -1, 2).norm(dim=-1)  # noqa: E731
    torch.testing.assert_close(pairs(rotated), pairs(keys))


def test_transform_divides_before_scaling():
    spec = get_spec("sam2.1_hiera_t")
    transform = transform_for(spec)
    assert isinstance(transform, AntialiasStretchTransform)
    coords = transform.apply_coords(np.array([[220.5, 140.5]]), (300, 451))
    expected = (np.float32([220.5, 140.5]) / np.float32([451, 300])) * np.float32(1024)
    np.testing.assert_array_equal(coords[0], expected)
    torch.testing.assert_close(
        transform.apply_coords_torch(torch.tensor([[220.5, 140.5]]), (300, 451))[0],
        torch.from_numpy(expected))
    x, size = transform.to_model_input(np.zeros((30, 50, 3), np.uint8))
    assert x.shape == (1, 3, 1024, 1024) and size == (1024, 1024)


@pytest.fixture(scope="module")
def tiny():
    return load_tiny_sam2()


def test_tiny_contract_shapes(tiny, one_thread):
    x = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        features = tiny.encode(x)
        assert [tuple(f.shape) for f in features] == [(1, 256, 8, 8), (1, 32, 32, 32),
                                                     (1, 64, 16, 16)]
        points = torch.tensor([[[10.0, 20.0]], [[50.0, 60.0]]])
        labels = torch.ones(2, 1, dtype=torch.long)
        boxes = torch.tensor([[0.0, 0.0, 64.0, 64.0], [8.0, 8.0, 100.0, 90.0]])
        low, iou = tiny.decode(features, points, labels, boxes, multimask_output=True)
        assert low.shape == (2, 3, 32, 32) and iou.shape == (2, 3)
        assert ((iou >= 0) & (iou <= 1)).all()  # sigmoid IoU head
        low1, iou1 = tiny.decode(features, points[:1], labels[:1], multimask_output=False)
        assert low1.shape == (1, 1, 32, 32) and iou1.shape == (1, 1)
        with pytest.raises(ValueError, match="expected"):
            tiny.encode(torch.randn(1, 3, 64, 64))


def test_single_mask_fallback_picks_best_multimask(tiny):
    """An unstable token-0 mask is replaced by the best of tokens 1..3 (stability rule)."""
    decoder = tiny.sam_mask_decoder
    masks = torch.zeros(1, 4, 8, 8)
    masks[0, 0] = torch.linspace(-0.04, 0.04, 64).view(8, 8)  # every pixel inside +-0.05
    masks[0, 2] = 5.0
    iou = torch.tensor([[0.9, 0.1, 0.8, 0.3]])
    out_masks, out_iou = decoder._most_stable(masks, iou)
    assert torch.equal(out_masks[0, 0], masks[0, 2]) and out_iou.item() == pytest.approx(0.8)
    masks[0, 0] = 3.0  # stable: kept
    out_masks, out_iou = decoder._most_stable(masks, iou)
    assert torch.equal(out_masks[0, 0], masks[0, 0]) and out_iou.item() == pytest.approx(0.9)


def test_tiny_spec_builds_on_meta():
    with torch.device("meta"):
        model = TINY_SAM2.build()
    assert model.image_size == TINY_SAM2.input_size

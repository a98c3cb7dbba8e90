"""EfficientSAM contract and input validation (random weights; no parity data needed)."""
from __future__ import annotations

import pytest
import torch

from napari_segany.models.efficient_sam import EfficientSam
from napari_segany.models.efficient_sam.build import build_efficient_sam, build_efficient_sam_vitt
from napari_segany.models.efficient_sam.image_encoder import resize_abs_pos


@pytest.fixture(scope="module")
def model() -> EfficientSam:
    torch.manual_seed(0)
    return build_efficient_sam_vitt().eval()


@pytest.fixture(scope="module")
def emb() -> torch.Tensor:
    return torch.randn(1, 256, 64, 64, generator=torch.Generator().manual_seed(1))


def _decode(model, *args, **kwargs):
    with torch.no_grad():
        return model.decode(*args, **kwargs)


def test_contract_attributes(model):
    assert model.image_size == 1024
    assert model.mask_threshold == 0.0
    assert model.supports_mask_input is False
    assert not any("pixel_" in k for k in model.state_dict())  # the engine normalises


def test_registry_builds_it():
    from napari_segany.models.registry import get_spec

    for name in ("efficient_sam_vitt", "efficient_sam_vits"):
        assert isinstance(get_spec(name).build(), EfficientSam)


def test_output_shapes(model, emb):
    coords = torch.tensor([[[500.0, 400.0]], [[100.0, 900.0]]])
    labels = torch.ones(2, 1, dtype=torch.long)
    lowres, iou = _decode(model, emb, coords, labels)
    assert lowres.shape == (2, 3, 256, 256) and iou.shape == (2, 3)
    lowres1, iou1 = _decode(model, emb, coords, labels, multimask_output=False)
    assert lowres1.shape == (2, 1, 256, 256) and iou1.shape == (2, 1)


def test_single_mask_is_token_zero(model, emb):
    """multimask_output=False returns mask token 0 (what the official decoder returns)."""
    coords, labels = torch.tensor([[[500.0, 400.0]]]), torch.ones(1, 1)
    lowres, iou = _decode(model, emb, coords, labels, multimask_output=False)
    pe_coords, pe_labels = model.prepare_prompts(coords, labels, None)
    with torch.no_grad():
        sparse = model.prompt_encoder(pe_coords, pe_labels)
        all_masks, all_iou = model.mask_decoder.predict_masks(
            emb, model.prompt_encoder.get_dense_pe(), sparse
        )
    torch.testing.assert_close(lowres, all_masks[:, :1])
    torch.testing.assert_close(iou, all_iou[:, :1])


def test_one_embedding_serves_many_prompt_sets(model, emb):
    coords = torch.tensor([[[500.0, 400.0]], [[100.0, 900.0]]])
    labels = torch.ones(2, 1)
    batched, _ = _decode(model, emb, coords, labels)
    single, _ = _decode(model, emb, coords[1:], labels[1:])
    torch.testing.assert_close(batched[1:], single, rtol=1e-5, atol=1e-5)
    per_set, _ = _decode(model, emb.expand(2, -1, -1, -1), coords, labels)
    torch.testing.assert_close(batched, per_set, rtol=1e-5, atol=1e-5)


def test_prepare_prompts_order_and_padding(model):
    # padding inside the given points moves behind the box; its coordinates become -1,
    # and so does every negative coordinate (official get_rescaled_pts)
    coords = torch.tensor([[[10.0, 20.0], [7.0, 7.0], [-3.0, 40.0]]])
    labels = torch.tensor([[1, -1, 0]])
    box = torch.tensor([[1.0, 2.0, 300.0, 400.0]])
    pe_coords, pe_labels = model.prepare_prompts(coords, labels, box)
    assert pe_labels.tolist() == [[1, 0, 2, 3, -1, -1]]
    assert pe_coords.tolist() == [
        [[10.0, 20.0], [-1.0, 40.0], [1.0, 2.0], [300.0, 400.0], [-1.0, -1.0], [-1.0, -1.0]]
    ]
    assert pe_coords.dtype == torch.float32 and pe_labels.dtype == torch.int64


def test_more_than_six_slots_is_fine_when_the_rest_is_padding(model):
    coords = torch.zeros(1, 8, 2)
    labels = torch.tensor([[1, 1, -1, -1, -1, -1, -1, -1]])
    pe_coords, pe_labels = model.prepare_prompts(coords, labels, torch.zeros(1, 4))
    assert pe_labels.tolist() == [[1, 1, 2, 3, -1, -1]]


def test_mask_input_rejected(model, emb):
    with pytest.raises(ValueError, match="no mask prompt"):
        _decode(
            model, emb, torch.zeros(1, 1, 2), torch.ones(1, 1),
            mask_input=torch.zeros(1, 1, 256, 256),
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "at least one prompt"),
        ({"point_coords": torch.zeros(1, 1, 2)}, "point_labels"),
        ({"point_coords": torch.zeros(1, 2), "point_labels": torch.ones(1, 2)}, r"\(B, N, 2\)"),
        ({"point_coords": torch.zeros(1, 1, 2), "point_labels": torch.tensor([[4]])},
         "got \\[4\\]"),
        ({"point_coords": torch.zeros(1, 7, 2), "point_labels": torch.ones(1, 7)}, "at most 6"),
        ({"point_coords": torch.zeros(1, 5, 2), "point_labels": torch.ones(1, 5),
          "boxes": torch.zeros(1, 4)}, "got 7"),
        ({"boxes": torch.zeros(4)}, r"\(B, 4\)"),
        ({"point_coords": torch.zeros(2, 1, 2), "point_labels": torch.ones(2, 1),
          "boxes": torch.zeros(1, 4)}, "same number of prompt sets"),
    ],
)
def test_bad_prompts(model, emb, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _decode(model, emb, **kwargs)


def test_embedding_batch_mismatch(model):
    with pytest.raises(ValueError, match="embeddings must be"):
        _decode(model, torch.zeros(3, 256, 64, 64), torch.zeros(2, 1, 2), torch.ones(2, 1))


def test_encoder_shapes_and_size_check():
    small = build_efficient_sam(192, 3, image_size=256)  # grid 16: fast
    with torch.no_grad():
        assert small.encode(torch.zeros(1, 3, 256, 256)).shape == (1, 256, 16, 16)
    with pytest.raises(ValueError, match="256x256"):
        small.encode(torch.zeros(1, 3, 200, 256))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        small.encode(torch.zeros(3, 256, 256))


def test_pos_embed_at_pretraining_size_is_not_resampled():
    pos = torch.randn(1, 1 + 14 * 14, 8)
    expected = pos[:, 1:].reshape(1, 14, 14, 8)
    torch.testing.assert_close(resize_abs_pos(pos, (14, 14)), expected, rtol=0, atol=0)
    assert resize_abs_pos(pos, (64, 64)).shape == (1, 64, 64, 8)

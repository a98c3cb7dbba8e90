"""Fast unit tests of the SAM networks on a tiny configuration (no parity data needed).

The tiny model (ViT 64-wide, 2 blocks, image_size 256) has a 16 x 16 embedding and
64 x 64 low-res logits; everything else (decoder width 256, 4 mask tokens) is SAM's.
"""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from napari_segany.models.sam import image_encoder as ie, transformer as tr
from napari_segany.models.sam.build import build_sam, build_sam_vit
from napari_segany.models.sam.keys import map_sam_keys


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = build_sam_vit(embed_dim=64, depth=2, num_heads=2, global_attn_indexes=(1,),
                          image_size=256).eval()
    with torch.no_grad():  # non-zero rel-pos tables so the tests exercise them
        for p in model.parameters():
            if p.ndim == 2 and p.shape[1] == 32:
                p.normal_(0, 0.5)
    return model


@pytest.fixture(scope="module")
def emb(tiny):
    torch.manual_seed(1)
    with torch.inference_mode():
        return tiny.encode(torch.randn(2, 3, 256, 256))


def test_sizes_derive_from_image_size(tiny, emb):
    assert tiny.image_size == 256 and tiny.mask_threshold == 0.0 and tiny.supports_mask_input
    assert emb.shape == (2, 256, 16, 16)
    assert tiny.prompt_encoder.image_embedding_size == (16, 16)
    assert tiny.prompt_encoder.mask_input_size == (64, 64)
    assert tiny.prompt_encoder.get_dense_pe().shape == (1, 256, 16, 16)
    assert not any("pixel" in k for k in tiny.state_dict())


@pytest.mark.parametrize("multimask, m", [(True, 3), (False, 1)])
def test_decode_shapes(tiny, emb, multimask, m):
    pts = torch.tensor([[[10.0, 20.0], [100.0, 50.0]]])
    with torch.inference_mode():
        low_res, iou = tiny.decode(emb[:1], pts, torch.tensor([[1, 0]]), multimask_output=multimask)
    assert low_res.shape == (1, m, 64, 64) and iou.shape == (1, m)


def test_batch_one_embedding_broadcasts_over_prompt_sets(tiny, emb):
    pts = torch.tensor([[[10.0, 20.0]], [[200.0, 31.5]], [[128.0, 128.0]]])
    labels = torch.tensor([[1], [1], [0]])
    boxes = torch.tensor([[0.0, 0.0, 100.0, 90.0], [50.0, 60.0, 250.0, 200.0], [5.0, 5, 9, 9]])
    with torch.inference_mode():
        low_b, iou_b = tiny.decode(emb[:1], pts, labels, boxes)
        for i in range(3):
            low, iou = tiny.decode(emb[:1], pts[i:i + 1], labels[i:i + 1], boxes[i:i + 1])
            torch.testing.assert_close(low_b[i:i + 1], low, atol=1e-5, rtol=0)
            torch.testing.assert_close(iou_b[i:i + 1], iou, atol=1e-6, rtol=0)
        # B embeddings with B prompt sets: each set decodes against its own image
        low_2, _ = tiny.decode(emb, pts[:2], labels[:2])
        low_1, _ = tiny.decode(emb[1:], pts[1:2], labels[1:2])
    torch.testing.assert_close(low_2[1:], low_1, atol=1e-5, rtol=0)


def test_prompt_encoder_tokens(tiny):
    pe = tiny.prompt_encoder
    pts, labels = torch.tensor([[[10.0, 20.0]]]), torch.tensor([[1]])
    box = torch.tensor([[1.0, 2.0, 30.0, 40.0]])
    sparse, dense = pe((pts, labels), None, None)
    assert sparse.shape == (1, 2, 256) and dense.shape == (1, 256, 16, 16)
    # the padding point (label -1) is exactly not_a_point_embed
    torch.testing.assert_close(sparse[0, 1], pe.not_a_point_embed.weight[0], rtol=0, atol=0)
    sparse_box, _ = pe((pts, labels), box, None)  # points first, then the 2 corners, no pad
    assert sparse_box.shape == (1, 3, 256)
    torch.testing.assert_close(sparse_box[:, :1], sparse[:, :1], rtol=0, atol=0)
    box_only, _ = pe(None, box, None)
    torch.testing.assert_close(sparse_box[:, 1:], box_only, rtol=0, atol=0)
    # +0.5 pixel centre, then x / W, y / H
    expected = pe.pe_layer._pe_encoding(torch.tensor([[[10.5 / 256, 20.5 / 256]]]))
    torch.testing.assert_close(sparse[:, :1] - pe.point_embeddings[1].weight, expected)


def test_dense_pe_cache_follows_loaded_weights(tiny):
    pe = tiny.prompt_encoder
    before = pe.get_dense_pe().clone()
    sd = {k: v.clone() for k, v in tiny.state_dict().items()}
    key = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
    original = sd[key].clone()
    try:
        sd[key] = original * 2
        tiny.load_state_dict(sd)
        assert not torch.allclose(pe.get_dense_pe(), before)
    finally:
        sd[key] = original
        tiny.load_state_dict(sd)
    torch.testing.assert_close(pe.get_dense_pe(), before, rtol=0, atol=0)


def test_upscaling_equals_transposed_convs(tiny):
    dec = copy.deepcopy(tiny.mask_decoder)
    with torch.no_grad():
        for p in dec.output_upscaling.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        src = torch.randn(2, 256, 5, 7)
        ref = dec.output_upscaling(src)  # official NCHW path: (2, 32, 20, 28)
        up = dec._upscale(src.flatten(2).transpose(1, 2), 5, 7)  # (2, 5, 7, 2, 2, 2, 2, 32)
        ours = up.permute(0, 7, 1, 3, 5, 2, 4, 6).reshape(2, 32, 20, 28)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def _reference_attention(attn: ie.Attention, x: torch.Tensor) -> torch.Tensor:
    """The official algorithm: project every (padded) token, explicit softmax."""
    b, h, w, c = x.shape
    heads = attn.num_heads
    qkv = attn.qkv(x).reshape(b, h * w, 3, heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.reshape(3, b * heads, h * w, -1).unbind(0)
    rh, rw = ie._rel_pos_table(h, attn.rel_pos_h), ie._rel_pos_table(w, attn.rel_pos_w)
    r_q = q.reshape(b * heads, h, w, -1)
    rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, rh)
    rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, rw)
    a = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    a = (a.view(-1, h, w, h, w) + rel_h[..., None] + rel_w[..., None, :]).view(-1, h * w, h * w)
    out = (a.softmax(-1) @ v).view(b, heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, c)
    return attn.proj(out)


def test_windowed_attention_with_padding_matches_reference():
    torch.manual_seed(0)
    ws = 4
    attn = ie.Attention(32, 2, (ws, ws))
    with torch.no_grad():
        attn.rel_pos_h.normal_(), attn.rel_pos_w.normal_(), attn.qkv.bias.normal_()
        x = torch.randn(2, 6, 7, 32)  # pads to 8 x 8: 4 windows, padded tokens are zeros
        xp = F.pad(x, (0, 0, 0, 1, 0, 2))
        windows = xp.view(2, 2, ws, 2, ws, 32).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws, ws, 32)
        ref = _reference_attention(attn, windows).view(2, 2, 2, ws, ws, 32)
        ref = ref.permute(0, 1, 3, 2, 4, 5).reshape(2, 8, 8, 32)[:, :6, :7]
        torch.testing.assert_close(attn.forward_windows(x, ws), ref, atol=1e-5, rtol=1e-5)


def test_global_attention_chunks_match_reference(monkeypatch):
    torch.manual_seed(0)
    attn = ie.Attention(32, 2, (6, 5))
    with torch.no_grad():
        attn.rel_pos_h.normal_(), attn.rel_pos_w.normal_()
        x = torch.randn(1, 6, 5, 32)
        ref = _reference_attention(attn, x)
        torch.testing.assert_close(attn(x), ref, atol=1e-5, rtol=1e-5)
        row_bytes = 2 * 5 * 6 * 5 * 4
        monkeypatch.setattr(ie, "_BIAS_BUDGET_BYTES", 2 * row_bytes)  # 3 chunks of 2 rows
        torch.testing.assert_close(attn(x), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("b, bk, n", [(1, 1, 7), (3, 1, 2), (2, 2, 5), (1, 1, 40)])
def test_folded_cross_attention_equals_plain(b, bk, n):
    """tokens_to_image / image_to_tokens (projections folded into the few tokens when
    that is cheaper, here all but n = 40) compute the plain attention."""
    torch.manual_seed(0)
    attn = tr.Attention(64, 4, downsample_rate=2)
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0, 0.3)
        tokens, image = torch.randn(b, n, 64), torch.randn(bk, 50, 64)
        image_v = torch.randn(bk, 50, 64)
        torch.testing.assert_close(attn.tokens_to_image(tokens, image, image_v),
                                   attn(tokens, image, image_v), atol=1e-4, rtol=1e-4)
        tokens_v = torch.randn(b, n, 64)
        torch.testing.assert_close(attn.image_to_tokens(image, tokens, tokens_v),
                                   attn(image, tokens, tokens_v), atol=1e-4, rtol=1e-4)


def test_build_sam_wraps_any_encoder():
    class Stub(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 256, x.shape[2] // 16, x.shape[3] // 16)

    model = build_sam(Stub(), image_size=128).eval()
    assert model.encode(torch.zeros(1, 3, 128, 128)).shape == (1, 256, 8, 8)
    with pytest.raises(ValueError, match="multiple of 16"):
        build_sam(Stub(), image_size=100)


@pytest.mark.parametrize("kwargs, match", [
    ({"point_coords": torch.zeros(1, 1, 2)}, "together"),
    ({"point_coords": torch.zeros(1, 2), "point_labels": torch.ones(1, 1)}, "point_coords"),
    ({"point_coords": torch.zeros(1, 1, 2), "point_labels": torch.tensor([[2]])},
     "point_labels must"),
    ({"boxes": torch.zeros(1, 5)}, "boxes"),
    ({"boxes": torch.zeros(2, 4), "point_coords": torch.zeros(3, 1, 2),
      "point_labels": torch.ones(3, 1)}, "batch sizes"),
    ({"boxes": torch.zeros(1, 4), "mask_input": torch.zeros(1, 1, 256, 256)}, "mask_input"),
])
def test_decode_rejects_bad_prompts(tiny, emb, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny.decode(emb[:1], **kwargs)


def test_decode_rejects_mismatched_embeddings(tiny, emb):
    with pytest.raises(ValueError, match="embeddings"):
        tiny.decode(emb[:, :, :8], boxes=torch.zeros(1, 4))
    with pytest.raises(ValueError, match="batch sizes"):
        tiny.decode(emb, boxes=torch.zeros(3, 4))


def test_encode_rejects_wrong_size(tiny):
    with pytest.raises(ValueError, match=r"\(B, 3, 256, 256\)"):
        tiny.encode(torch.zeros(1, 3, 256, 200))


# ----------------------------------------------------------------- key mapping
def test_map_sam_keys_unwraps_and_strips():
    t = torch.zeros(1)
    plain = {"image_encoder.pos_embed": t, "mask_decoder.iou_token.weight": t}
    assert map_sam_keys(plain) == plain
    wrapped = {"model": {f"module.{k}": v for k, v in plain.items()}, "epoch": 3}
    assert map_sam_keys(wrapped) == plain
    assert map_sam_keys({"state_dict": {f"sam.{k}": v for k, v in plain.items()}}) == plain
    assert list(wrapped["model"])[0].startswith("module.")  # input untouched


def test_map_sam_keys_drops_only_documented_keys():
    t = torch.zeros(1)
    sd = {"image_encoder.head.weight": t, "image_encoder.norm_head.bias": t,
          "pixel_mean": t, "pixel_std": t, "image_encoder.neck.0.weight": t, "unknown.x": t}
    kept = {"image_encoder.head.weight", "image_encoder.norm_head.bias",  # MobileSAM's
            "image_encoder.neck.0.weight", "unknown.x"}
    assert set(map_sam_keys(sd)) == kept
    with pytest.raises(ValueError, match="state dict"):
        map_sam_keys([1, 2])


def test_tiny_model_round_trips_through_state_dict(tiny):
    other = build_sam_vit(embed_dim=64, depth=2, num_heads=2, global_attn_indexes=(1,),
                          image_size=256)
    other.load_state_dict(map_sam_keys({"module." + k: v for k, v in tiny.state_dict().items()}))
    x = torch.randn(1, 3, 256, 256)
    with torch.inference_mode():
        torch.testing.assert_close(other.eval().encode(x), tiny.encode(x), rtol=0, atol=0)
    assert math.isclose(other.mask_threshold, 0.0)


def test_backward_and_bfloat16():
    """Training-style use works (grads reach encoder rel-pos and folded projections),
    and the whole model runs in bfloat16 (positional encodings stay float32 inside)."""
    model = build_sam_vit(embed_dim=64, depth=2, num_heads=2, global_attn_indexes=(1,),
                          image_size=256)
    x = torch.randn(1, 3, 256, 256)
    pts, labels = torch.tensor([[[10.0, 20.0]]]), torch.tensor([[1]])
    with torch.inference_mode():  # caches the dense PE first, as an app would
        model.decode(model.encode(x), pts, labels)
    low_res, iou = model.decode(model.encode(x), pts, labels, mask_input=torch.randn(1, 1, 64, 64))
    (low_res.sum() + iou.sum()).backward()
    assert model.image_encoder.blocks[1].attn.rel_pos_h.grad.abs().sum() > 0
    assert model.mask_decoder.transformer.final_attn_token_to_image.k_proj.weight.grad is not None
    model = model.to(torch.bfloat16).eval()
    with torch.inference_mode():
        low_res, _ = model.decode(model.encode(x.bfloat16()), pts, labels)
    assert low_res.dtype == torch.bfloat16 and torch.isfinite(low_res).all()

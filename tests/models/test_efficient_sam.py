"""Parity of our EfficientSAM ViT-T / ViT-S with the official implementation.

Golden vectors: ``shared/parity/efficient_sam_vit{t,s}/case.npz`` (see each README),
produced by yformer/EfficientSAM @ d525f622 on synthesized weights.  Tolerances are the
README's "Suggested checks" and are quoted next to each assertion.  Every encoder runs
once per image per case (module-scoped cache).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from napari_segany.models.efficient_sam.build import (
    build_efficient_sam_vits,
    build_efficient_sam_vitt,
)

pytestmark = pytest.mark.parity

BUILDERS = {
    "efficient_sam_vitt": build_efficient_sam_vitt,
    "efficient_sam_vits": build_efficient_sam_vits,
}
IMAGES = {"chelsea": "skimage_chelsea.png", "coins_x4": "skimage_coins_x4nn_rgb.png"}
PROMPTS = {
    "chelsea": ("p1_point", "p2_pos_pos_neg", "p3_box", "p4_multi"),
    "coins_x4": ("p1_point", "p3_box"),
}
IMAGE_PROMPTS = [(img, p) for img, ps in PROMPTS.items() for p in ps]
MEAN = (0.485, 0.456, 0.406)  # README "Normalize": ImageNet, [0, 1] units
STD = (0.229, 0.224, 0.225)
SIZE = 1024


# ----------------------------------------------------------------- pipeline (README recipe)
def preprocess(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) RGB -> (1, 3, 1024, 1024): /255, bilinear stretch, normalise."""
    x = torch.from_numpy(img).permute(2, 0, 1).float().div(255)[None]
    if x.shape[-2:] != (SIZE, SIZE):
        x = F.interpolate(x, (SIZE, SIZE), mode="bilinear", align_corners=False, antialias=False)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def to_model_frame(points: torch.Tensor, hw) -> torch.Tensor:
    """(..., 2) x, y original pixels -> the stretched 1024 frame (x*1024/W, y*1024/H),
    multiplying before dividing, in float32, as the official get_rescaled_pts."""
    h, w = int(hw[0]), int(hw[1])
    return torch.stack([points[..., 0] * SIZE / w, points[..., 1] * SIZE / h], dim=-1)


def upscale_stretch(lowres: torch.Tensor, hw) -> torch.Tensor:
    """(B, M, 256, 256) logits -> (B, M, H, W): one bicubic step, align_corners=False."""
    size = (int(hw[0]), int(hw[1]))
    return F.interpolate(lowres, size=size, mode="bicubic", align_corners=False)


def close(actual, expected, rtol: float, atol: float) -> None:
    """|actual - expected| <= atol + rtol * |expected| (the README's check)."""
    actual = actual.numpy() if torch.is_tensor(actual) else actual
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


# ----------------------------------------------------------------- fixtures
@dataclass
class Case:
    name: str
    model: torch.nn.Module
    data: dict
    images: dict
    shared: Callable  # the session's parity_embedding

    def embeddings(self, img: str) -> torch.Tensor:
        """Our float32 embedding of an image: the session's ``Predictor.set_image`` of these
        weights (its input is the README's, ``test_predictor_input_is_the_readme_recipe``)."""
        return self.shared(self.name, img).features

    def prompt(self, img: str, p: str):
        """(coords in the 1024 frame (Q, N, 2), labels (Q, N)) of a stored prompt set."""
        points = torch.from_numpy(self.data[f"{img}__{p}__points"])[0]
        labels = torch.from_numpy(self.data[f"{img}__{p}__labels"])[0]
        return to_model_frame(points, self.data[f"{img}__image_hw"]), labels


@pytest.fixture(scope="module", params=list(BUILDERS))
def case(request, parity_dir, synth_state_dict, parity_embedding) -> Case:
    name = request.param
    model = BUILDERS[name]()
    model.load_state_dict(synth_state_dict(name), strict=True)
    model.eval()
    with np.load(parity_dir / name / "case.npz") as npz:
        data = {k: npz[k] for k in npz.files}
    images = {k: np.array(Image.open(parity_dir / "images" / f)) for k, f in IMAGES.items()}
    return Case(name, model, data, images, parity_embedding)


def _decode(case: Case, emb: torch.Tensor, img: str, p: str):
    coords, labels = case.prompt(img, p)
    with torch.no_grad():
        return case.model.decode(emb, coords, labels, multimask_output=True)


# ----------------------------------------------------------------- weights
def test_strict_load_and_key_set(case, synth, parity_dir):
    schema = synth.load_schema(parity_dir / case.name / "schema.json")
    ours = case.model.state_dict()
    assert [k for k, _, _ in schema] == list(ours)  # 278 keys, no pixel_mean/std
    for key, shape, _ in schema:
        assert list(ours[key].shape) == shape, key


def test_prompt_sets_are_the_known_ones(case):
    stored = {tuple(k.split("__")[:2]) for k in case.data if k.count("__") == 2}
    assert stored == set(IMAGE_PROMPTS)


# ----------------------------------------------------------------- preprocessing / encoder
@pytest.mark.parametrize("img", list(IMAGES))
def test_preprocess(case, img):
    x = preprocess(case.images[img])
    assert tuple(case.data[f"{img}__image_hw"]) == case.images[img].shape[:2]
    # README: `<img>__preproc_*` rtol 1e-05, atol 1e-05
    for key, sl in [
        ("preproc_sub64", (slice(None), slice(None), slice(None, None, 64), slice(None, None, 64))),
        ("preproc_crop_tl", (slice(None), slice(None), slice(None, 16), slice(None, 16))),
        ("preproc_crop_br", (slice(None), slice(None), slice(-16, None), slice(-16, None))),
    ]:
        close(x[sl], case.data[f"{img}__{key}"], 1e-5, 1e-5)


def test_dense_pe(case):
    pe = case.model.prompt_encoder.get_dense_pe()[:, :, ::8, ::8]
    # README: `dense_pe_sub8` rtol 1e-05, atol 1e-05
    close(pe.detach(), case.data["dense_pe_sub8"], 1e-5, 1e-5)


@pytest.mark.parametrize("img", list(IMAGES))
def test_predictor_input_is_the_readme_recipe(case, img):
    """The Predictor feeds the encoder exactly the README's model input."""
    from napari_segany.engine.interactive.transforms import transform_for
    from napari_segany.models.registry import get_spec

    ours, _ = transform_for(get_spec(case.name)).to_model_input(case.images[img])
    torch.testing.assert_close(ours, preprocess(case.images[img]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("img", list(IMAGES))
def test_embeddings(case, img):
    ours = case.embeddings(img).numpy()
    expected = case.data[f"{img}__embeddings"].astype(np.float32)
    # README: `<img>__embeddings (stored as float16)` rtol 0.002, atol 0.001
    np.testing.assert_allclose(ours, expected, rtol=2e-3, atol=1e-3)


# ----------------------------------------------------------------- prompt encoder
@pytest.mark.parametrize("img,p", IMAGE_PROMPTS)
def test_prompt_encoder(case, img, p):
    coords, labels = case.prompt(img, p)
    pe_coords, pe_labels = case.model.prepare_prompts(coords, labels, None)
    # README: `pe_coords_in` rtol 1e-06, atol 1e-05; labels exact
    close(pe_coords, case.data[f"{img}__{p}__pe_coords_in"], 1e-6, 1e-5)
    np.testing.assert_array_equal(pe_labels.numpy(), case.data[f"{img}__{p}__pe_labels_in"])
    with torch.no_grad():
        sparse = case.model.prompt_encoder(pe_coords, pe_labels)
    # README: `sparse_embeddings` rtol 1e-05, atol 1e-05
    close(sparse, case.data[f"{img}__{p}__sparse_embeddings"], 1e-5, 1e-5)


# ----------------------------------------------------------------- decoder
@pytest.mark.parametrize("img,p", IMAGE_PROMPTS)
def test_decoder_on_stored_embeddings(case, img, p):
    emb = torch.from_numpy(case.data[f"{img}__embeddings"].astype(np.float32))
    lowres, iou = _decode(case, emb, img, p)
    # README: decoder fed the stored float16 embeddings: logits rtol 0.005, atol 0.005;
    # iou rtol 0.0001, atol 0.0001
    close(lowres[None], case.data[f"{img}__{p}__lowres_logits"], 5e-3, 5e-3)
    close(iou[None], case.data[f"{img}__{p}__iou"], 1e-4, 1e-4)
    hw = case.data[f"{img}__image_hw"]
    best = _best_logits_sub4(upscale_stretch(lowres, hw), iou)
    # README: best_logits_sub4, decoder fed the stored float16 embeddings: rtol/atol 0.005
    close(best, case.data[f"{img}__{p}__best_logits_sub4"], 5e-3, 5e-3)


@pytest.mark.parametrize("img,p", IMAGE_PROMPTS)
def test_end_to_end(case, img, p):
    lowres, iou = _decode(case, case.embeddings(img), img, p)
    d = {k.split("__")[-1]: v for k, v in case.data.items() if k.startswith(f"{img}__{p}__")}
    # README: `lowres_logits (end to end)` rtol 0.0001, atol 0.0001; `iou, iou_sorted` 1e-4
    close(lowres[None], d["lowres_logits"], 1e-4, 1e-4)
    close(iou[None], d["iou"], 1e-4, 1e-4)
    sorted_ids = torch.argsort(iou, dim=-1, descending=True)
    np.testing.assert_array_equal(sorted_ids[None].numpy(), d["sorted_ids"])  # README: exact
    iou_sorted = torch.take_along_dim(iou, sorted_ids, dim=-1)
    close(iou_sorted[None], d["iou_sorted"], 1e-4, 1e-4)

    hw = case.data[f"{img}__image_hw"]
    full = upscale_stretch(lowres, hw)
    # README: `best_logits_sub4 (end to end)` rtol 0.001, atol 0.001
    close(_best_logits_sub4(full, iou), d["best_logits_sub4"], 1e-3, 1e-3)
    expected_logits = upscale_stretch(torch.from_numpy(d["lowres_logits"][0]), hw)
    _check_masks(full >= case.model.mask_threshold, d["masks_packed"][0], expected_logits)


def _best_logits_sub4(full: torch.Tensor, iou: torch.Tensor) -> np.ndarray:
    """Official example's pick: highest-IoU mask, every 4th row/column -> (1, Q, h4, w4)."""
    best = torch.argmax(iou, dim=-1)
    picked = full[torch.arange(full.shape[0]), best]
    return picked[None, :, ::4, ::4].numpy()


def _check_masks(ours: torch.Tensor, packed: np.ndarray, expected_logits: torch.Tensor):
    """README: <= 0.1 % of the pixels of any one mask may differ, and only where the
    expected full-res logit (bicubic of lowres_logits) is within 1e-3 of 0."""
    w = ours.shape[-1]
    expected = np.unpackbits(packed, axis=-1, count=w).astype(bool)
    flips = ours.numpy() != expected
    per_mask = flips.reshape(*flips.shape[:2], -1).mean(-1)
    assert per_mask.max() <= 1e-3, f"worst mask differs on {per_mask.max():.4%} of its pixels"
    near_zero = np.abs(expected_logits.numpy()[flips])
    assert near_zero.size == 0 or near_zero.max() <= 1e-3, f"flip at |logit| {near_zero.max()}"


# ----------------------------------------------------------------- boxes argument
@pytest.mark.parametrize("img", list(PROMPTS))
def test_boxes_argument_equals_corner_points(case, img):
    """boxes (B, 4) == two corner points with labels 2, 3 (the stored p3_box)."""
    coords, _ = case.prompt(img, "p3_box")
    with torch.no_grad():
        lowres, iou = case.model.decode(case.embeddings(img), boxes=coords.reshape(-1, 4))
    d = {k.split("__")[-1]: v for k, v in case.data.items() if k.startswith(f"{img}__p3_box__")}
    close(lowres[None], d["lowres_logits"], 1e-4, 1e-4)
    close(iou[None], d["iou"], 1e-4, 1e-4)


def test_box_after_point_matches_box_first(case):
    """Our order (points, then box corners) vs the stored [tl, br, point] query of p4_multi:
    the decoder is permutation-invariant over prompt tokens up to float rounding."""
    coords, _ = case.prompt("chelsea", "p4_multi")
    box, point = coords[2:3, :2].reshape(1, 4), coords[2:3, 2:]
    with torch.no_grad():
        lowres, iou = case.model.decode(
            case.embeddings("chelsea"), point, torch.ones(1, 1, dtype=torch.long), boxes=box
        )
        pe_coords, pe_labels = case.model.prepare_prompts(point, torch.ones(1, 1), box)
    assert pe_labels.tolist() == [[1, 2, 3, -1, -1, -1]]
    d = case.data
    close(lowres, d["chelsea__p4_multi__lowres_logits"][0, 2:], 1e-4, 1e-4)
    close(iou, d["chelsea__p4_multi__iou"][0, 2:], 1e-4, 1e-4)

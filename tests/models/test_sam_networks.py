"""Parity of our SAM networks (ViT-B/L/H) with Meta's segment-anything 1.0.

Golden vectors: ``shared/parity/sam_vit_b/case.npz`` (README there), produced by the
official code on synthesized weights; ``sam_vit_l``/``sam_vit_h`` ship schemas (and a
ViT-L embedding).  Tolerances are the READMEs' "Suggested checks", quoted next to each
assertion.  The 1024 x 1024 encoder runs once per image (module-scoped cache).
"""
from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from napari_segany.models.sam.build import build_sam_vit_b, build_sam_vit_h, build_sam_vit_l
from napari_segany.models.sam.keys import map_sam_keys

pytestmark = pytest.mark.parity

IMAGES = {"chelsea": "skimage_chelsea.png", "cell": "skimage_cell_rgb.png"}
RUNS = {  # README "Runs" table
    "chelsea": ("pos1_mm", "pos1_single", "pts3_mm", "pts3_single", "box_mm", "box_single",
                "boxneg_mm", "refine_single", "boxbatch"),
    "cell": ("pos1_mm", "pts3_single", "box_single", "boxneg_mm", "refine_single", "boxbatch"),
}
IMAGE_RUNS = [(img, run) for img, runs in RUNS.items() for run in runs]
SAM_MEAN = np.array([123.675, 116.28, 103.53], np.float32)  # README preprocessing step 3
SAM_STD = np.array([58.395, 57.12, 57.375], np.float32)
SIZE = 1024


def preprocess(img: np.ndarray) -> torch.Tensor:
    """README steps 2-3: PIL bilinear resize of the uint8 image to longest side 1024
    (``int(x * s + 0.5)``), normalise in 0..255 units, zero-pad bottom/right."""
    h, w = img.shape[:2]
    s = SIZE / max(h, w)
    newh, neww = int(h * s + 0.5), int(w * s + 0.5)
    resized = np.array(Image.fromarray(img).resize((neww, newh), Image.BILINEAR))
    x = torch.from_numpy((resized.astype(np.float32) - SAM_MEAN) / SAM_STD).permute(2, 0, 1)
    return F.pad(x, (0, SIZE - neww, 0, SIZE - newh))[None]


def load_image(parity_dir, name: str) -> np.ndarray:
    return np.array(Image.open(parity_dir / "images" / IMAGES[name]))


def check_schema(model: torch.nn.Module, schema) -> None:
    """Our state dict has exactly the official keys, in order, with the official shapes."""
    ours = model.state_dict()
    assert [k for k, _, _ in schema] == list(ours)
    for key, shape, _ in schema:
        assert list(ours[key].shape) == shape, key


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sam_b(synth_state_dict):
    model = build_sam_vit_b()
    model.load_state_dict(map_sam_keys(synth_state_dict("sam_vit_b")), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def case_b(parity_dir):
    with np.load(parity_dir / "sam_vit_b" / "case.npz") as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def our_embeddings(parity_embedding):
    """image name -> our float32 ViT-B embedding: the session's ``Predictor.set_image`` of the
    seed-0 weights, i.e. the predictor's preprocessing (checked against the README's recipe by
    ``test_predictor_input_is_the_readme_preprocessing``) and the same network."""
    return lambda name: parity_embedding("sam_vit_b", name).features


# ----------------------------------------------------------------- weights
def test_vit_b_loads_official_schema_strictly(sam_b, synth, parity_dir):
    check_schema(sam_b, synth.load_schema(parity_dir / "sam_vit_b" / "schema.json"))
    names = {k for k, _ in sam_b.named_buffers()}
    assert names == {"prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"}


@pytest.mark.parametrize(
    "name, build", [("sam_vit_l", build_sam_vit_l), ("sam_vit_h", build_sam_vit_h)]
)
def test_large_models_match_schema_on_meta_device(name, build, synth, parity_dir):
    with torch.device("meta"):
        model = build()
    check_schema(model, synth.load_schema(parity_dir / name / "schema.json"))


def test_runs_are_the_known_ones(case_b):
    stored = {tuple(k.split("__")[:2]) for k in case_b
              if k.count("__") == 2 and k.endswith("__low_res_logits")}
    assert stored == set(IMAGE_RUNS)


# ----------------------------------------------------------------- encoder
@pytest.mark.parametrize("img", list(IMAGES))
def test_predictor_input_is_the_readme_preprocessing(parity_dir, img):
    """The Predictor feeds the encoder exactly the README's model input (so the shared
    embedding of ``our_embeddings`` is this network's output on it)."""
    from napari_segany.engine.interactive.transforms import transform_for
    from napari_segany.models.registry import get_spec

    image = load_image(parity_dir, img)
    ours, _ = transform_for(get_spec("sam_vit_b")).to_model_input(image)
    torch.testing.assert_close(ours, preprocess(image), rtol=0, atol=1e-6)


@pytest.mark.parametrize("img", list(IMAGES))
def test_image_embedding(our_embeddings, case_b, img):
    ref = case_b[f"{img}__image_embedding"].astype(np.float32)
    ours = our_embeddings(img).numpy()
    assert ours.shape == ref.shape == (1, 256, 64, 64)
    # README: "image embedding: compare your float32 embedding with the stored float16 one
    # using atol = 0.005 (...), rtol = 1e-3."
    np.testing.assert_allclose(ours, ref, atol=0.005, rtol=1e-3)


# ----------------------------------------------------------------- decoder
def run_prompts(data: dict, img: str, run: str) -> dict:
    """decode() keyword arguments of a stored run, in the 1024 model frame."""
    p = f"{img}__{run}__"
    kw: dict = {"multimask_output": bool(data[p + "multimask_output"])}
    if p + "point_coords_model" in data:
        kw["point_coords"] = torch.from_numpy(data[p + "point_coords_model"])[None]
        kw["point_labels"] = torch.from_numpy(data[p + "point_labels"])[None]
    if p + "box_model" in data:
        kw["boxes"] = torch.from_numpy(data[p + "box_model"])[None]
    if p + "boxes_model" in data:  # batched boxes (predict_torch)
        kw["boxes"] = torch.from_numpy(data[p + "boxes_model"])
    if p + "mask_input_from" in data:
        # README: mask_input = npz[mask_input_from + '__low_res_logits'][mask_input_index][None]
        src, idx = str(data[p + "mask_input_from"]), int(data[p + "mask_input_index"])
        kw["mask_input"] = torch.from_numpy(data[src + "__low_res_logits"][idx])[None, None]
    return kw


@pytest.mark.parametrize("img, run", IMAGE_RUNS)
def test_decoder_on_stored_embedding(sam_b, case_b, img, run):
    emb = torch.from_numpy(case_b[f"{img}__image_embedding"].astype(np.float32))
    with torch.inference_mode():
        low_res, iou = sam_b.decode(emb, **run_prompts(case_b, img, run))
    ref_lr = case_b[f"{img}__{run}__low_res_logits"]
    ref_iou = case_b[f"{img}__{run}__iou_predictions"]
    if run != "boxbatch":  # predict() drops the batch axis
        ref_lr, ref_iou = ref_lr[None], ref_iou[None]
    assert low_res.shape == ref_lr.shape and iou.shape == ref_iou.shape
    # README: "decoder-only tests that feed the stored float16 embedding: low_res_logits
    # atol 0.005 (observed 0.00068), iou_predictions atol 1e-05 (observed 2.86e-06)"
    np.testing.assert_allclose(low_res.numpy(), ref_lr, atol=0.005, rtol=0)
    np.testing.assert_allclose(iou.numpy(), ref_iou, atol=1e-5, rtol=0)


@pytest.mark.parametrize("img, run", IMAGE_RUNS)
def test_decoder_on_our_embedding(sam_b, case_b, our_embeddings, img, run):
    """End to end through our encoder (float32 embedding, no float16 rounding)."""
    with torch.inference_mode():
        low_res, iou = sam_b.decode(our_embeddings(img), **run_prompts(case_b, img, run))
    ref_lr = case_b[f"{img}__{run}__low_res_logits"]
    ref_iou = case_b[f"{img}__{run}__iou_predictions"]
    if run != "boxbatch":
        ref_lr, ref_iou = ref_lr[None], ref_iou[None]
    # README: "low_res_logits: atol = 0.0001, rtol = 0"; "iou_predictions: atol = 1e-05"
    np.testing.assert_allclose(low_res.numpy(), ref_lr, atol=1e-4, rtol=0)
    np.testing.assert_allclose(iou.numpy(), ref_iou, atol=1e-5, rtol=0)

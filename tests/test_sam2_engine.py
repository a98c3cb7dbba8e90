"""SAM 2 through the regrouped engine, as SAM goes (issue 18 phase 2): the Predictor's
levels and clamped logits, the cache budget, the on-disk store, predictor_for with tiling,
the interactive session's mask feedback, everything mode (grid with SAM 2's defaults,
object-aware) and slice-by-slice propagation.  A tiny random SAM 2 (tests/_sam2_tiny.py):
mechanics, not quality; official parity is in tests/models/test_sam2_*.py."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import napari_segany as nsa
from _everything import RANDOM_WEIGHTS, cells_image, load_random_yolo
from _sam2_tiny import load_tiny_sam2
from napari_segany.engine.embeddings import EmbeddingKey, model_identity, slice_digest
from napari_segany.engine.errors import CheckpointError, EmbeddingError
from napari_segany.engine.everything.methods import with_model_defaults
from napari_segany.engine.images import to_uint8_rgb
from napari_segany.engine.interactive import InteractiveSession, ObjectPrompt

pytestmark = pytest.mark.usefixtures("one_thread")
SAM2_LEVELS = ((1, 256, 64, 64), (1, 32, 256, 256), (1, 64, 128, 128))  # Hiera-T at 1024


@pytest.fixture(scope="module")
def model():
    return load_tiny_sam2()


@pytest.fixture(scope="module")
def image():
    return cells_image()  # (96, 128) float32


@pytest.fixture(scope="module")
def embedding(model, image):
    return nsa.Predictor(model).encode(to_uint8_rgb(image))


def _predict(predictor, **kwargs):
    return predictor.predict(point_coords=[[60, 40]], point_labels=[1], **kwargs)


def test_a_sam2_embedding_has_its_levels_and_budget(model, embedding):
    assert [tuple(level.shape[1:]) for level in embedding.levels] == [(256, 8, 8), (32, 32, 32),
                                                                     (64, 16, 16)]
    assert (embedding.model, embedding.family) == ("tiny_sam2", "sam2")
    full = nsa.Embedding([torch.zeros(s) for s in SAM2_LEVELS], (512, 512))
    assert full.nbytes == 16 << 20  # 16 MiB per SAM 2 image in float32
    cache = nsa.EmbeddingCache(40 << 20)
    for k in range(3):
        cache.put(EmbeddingKey(str(k), "m"), full)
    assert len(cache) == 2 and cache.nbytes == 32 << 20
    moved = embedding.to("meta")
    assert all(level.device.type == "meta" for level in moved.levels) and embedding.to("cpu") is embedding


def test_set_embedding_needs_every_level(model, embedding, image):
    predictor = nsa.Predictor(model)
    with pytest.raises(EmbeddingError, match="3 feature level"):
        predictor.set_embedding(embedding.features, image.shape)
    with pytest.raises(EmbeddingError):
        predictor.set_embedding(embedding.replace(embedding.levels[:2]))
    predictor.set_embedding(embedding)
    reference = nsa.Predictor(model)
    reference.set_image(image)  # (fixtures ran with another thread count: float noise)
    for a, b in zip(_predict(predictor), _predict(reference)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_low_res_logits_are_clamped_but_masks_come_from_the_raw_ones(model, image):
    """A limit the tiny logits reach (theirs stay under 1; SAM 2's is 32)."""
    clamped = dataclasses.replace(model.spec, low_res_logit_limit=0.05)
    predictor = nsa.Predictor(model)
    predictor.set_image(image)
    raw_low, _ = predictor.decode_lowres([[60, 40]], [1])
    predictor.spec = clamped
    logits, scores, low = _predict(predictor, return_logits=True)
    assert np.abs(low).max() == pytest.approx(0.05) and np.abs(raw_low.numpy()).max() > 0.05
    np.testing.assert_allclose(low, raw_low[0].clamp(-0.05, 0.05).numpy())
    np.testing.assert_array_equal(logits, predictor.upsample(raw_low, return_logits=True)[0].numpy())
    _, _, low_t = predictor.predict_torch(torch.tensor([[[30.0, 40.0]]]), torch.tensor([[1]]))
    assert low_t.abs().max() <= 0.05 + 1e-7


def test_the_session_feeds_the_clamped_logits_back(model, image, monkeypatch):
    predictor = nsa.Predictor(model)
    predictor.set_image(image)
    predictor.spec = dataclasses.replace(model.spec, low_res_logit_limit=0.05)
    seen = []
    decode = model.decode
    monkeypatch.setattr(model, "decode", lambda *a, **k: (seen.append(k.get("mask_input")),
                                                          decode(*a, **k))[1])
    session = InteractiveSession(predictor)
    one = ObjectPrompt(("a",), np.array([[60.0, 40.0]]), np.array([1]), None)
    two = ObjectPrompt(("a",), np.array([[60.0, 40.0], [20.0, 20.0]]), np.array([1, 0]), None)
    session.set_prompts([one])
    session.set_prompts([two])
    assert seen[0] is None and seen[1].abs().max() <= 0.05 + 1e-7 and seen[1].shape[-1] == 32
    assert session.masks[0].n_candidates == 1


def test_store_round_trip_keeps_every_level(model, image, tmp_path):
    predictor = nsa.Predictor(model)
    predictor.set_image(image)
    key = EmbeddingKey(slice_digest(image), model_identity(model))
    nsa.EmbeddingStore(tmp_path, dtype="float32").put(key, predictor.embedding)
    stored = nsa.EmbeddingStore(tmp_path).get(key)
    assert len(stored.levels) == 3
    assert all(torch.equal(a, b) for a, b in zip(stored.levels, predictor.embedding.levels))
    again = nsa.Predictor(model)
    again.set_embedding(stored)
    for a, b in zip(_predict(again), _predict(predictor)):
        np.testing.assert_array_equal(a, b)
    half = nsa.EmbeddingStore(tmp_path / "f16")  # float16 on disk: rounding only
    half.put(key, predictor.embedding)
    again.set_embedding(half.get(key))
    np.testing.assert_allclose(_predict(again)[2], _predict(predictor)[2], atol=2e-3)


def test_predictor_for_tiles_and_each_tile_decodes_with_its_levels(model, tmp_path):
    large = np.tile(cells_image(), (3, 3))  # (288, 384)
    tiling = nsa.TilingSettings(tile=128, halo=16, threshold=200)
    store = nsa.EmbeddingStore(tmp_path, dtype="float32")
    tiled = nsa.predictor_for(model, large.shape, tiling, store=store)
    assert type(tiled) is nsa.TiledPredictor
    tiled.set_image(large)
    crops, scores = tiled.predict_crops(point_coords=[[170, 150]], point_labels=[1])
    assert len(crops) == 3 and scores.shape == (3,)
    row, col = tiled.grid.best_window(np.array([170, 150, 170, 150]))
    y0, y1, x0, x1 = tiled.grid.window(row, col)
    alone = nsa.Predictor(model)  # rule 1: the window decodes the prompt as an image would
    alone.set_image(large[y0:y1, x0:x1], contrast_limits=tiled.contrast)
    masks, expected, _ = alone.predict(point_coords=[[170 - x0, 150 - y0]], point_labels=[1])
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    stitched, _ = tiled.predict_crops(box=[10, 10, 370, 270])  # a box across tiles
    assert stitched[0][0] is not None or stitched[0][1].size == 0
    entries = [tiled.cache.get(tiled.tile_key(*rc)) for rc in tiled.grid.tiles()]
    assert all(e is None or len(e.levels) == 3 for e in entries)
    assert all(len(store.get(tiled.tile_key(*rc)).levels) == 3 for rc in tiled.grid.tiles()
               if store.has(tiled.tile_key(*rc)))


def test_everything_grid_uses_sam2s_defaults_and_object_aware_runs(model, image, monkeypatch):
    assert with_model_defaults("grid", model.spec, {}) == {"pred_iou_thresh": 0.8}
    assert with_model_defaults("grid", model.spec, {"pred_iou_thresh": 0.5}) == {"pred_iou_thresh": 0.5}
    assert with_model_defaults("grid", nsa.get_spec("sam_vit_b"), {}) == {}
    from napari_segany.engine.everything import grid

    seen = []
    iter_grid = grid.iter_grid
    monkeypatch.setattr(grid, "iter_grid", lambda p, rgb, params, *rest: (
        seen.append(params), iter_grid(p, rgb, params, *rest))[1])
    nsa.segment_everything(image, model, "grid", points_per_side=4)
    assert seen[0].pred_iou_thresh == 0.8 and seen[0].stability_score_thresh == 0.95
    result = nsa.segment_everything(image, model, "grid", points_per_side=4, **RANDOM_WEIGHTS)
    assert len(result.records) > 0 and result.labels.shape == image.shape
    detector = load_random_yolo("mobilesamv2_objectaware")
    boxes = nsa.segment_everything(image, model, "object_aware", detector=detector, conf=0.0,
                                   max_det=4, points_per_batch=2)
    assert 0 < len(boxes.records) <= 4
    tiled = nsa.segment_everything_tiled(np.tile(image, (2, 2)), model, "grid", tile=128,
                                         halo=16, points_per_side=4, **RANDOM_WEIGHTS)
    assert tiled.labels.shape == (192, 256)


def test_slice_by_slice_propagation_with_sam2_and_fastsam_refused(model, image, random_fastsam):
    stack = np.stack([np.roll(image, k, axis=1) for k in (0, 2, 4)])
    seed = np.zeros(image.shape, bool)
    seed[20:50, 30:70] = True
    rules = nsa.StopRules(min_score=None, max_area_ratio=None)
    result = nsa.propagate(stack, seed, 1, model, rules=rules)
    assert set(result.stops) == {"forward", "backward"} and result.encoded == 2
    with pytest.raises(CheckpointError, match="cannot propagate"):
        nsa.propagate(stack, seed, 1, random_fastsam, rules=rules)

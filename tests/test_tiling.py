"""Tiling: the grid, which tile decodes a prompt, stitching across tiles, the tiled session,
the store behind tiles, everything mode per tile with merging, and bounded memory."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from _everything import load_tiny
from _fakes import fake_model
from scipy import ndimage

from napari_segany.engine.embeddings import EmbeddingCache, EmbeddingStore
from napari_segany.engine.everything.masks import CompactMask
from napari_segany.engine.everything.result import EverythingResult, Record
from napari_segany.engine.interactive import InteractiveSession, Predictor, group_prompts
from napari_segany.engine.progress import Progress
from napari_segany.engine.tiling import TiledPredictor, TileGrid
from napari_segany.engine.tiling.settings import needs_tiling
from napari_segany.engine.tiling.grid import split_axis
from napari_segany.engine.everything.tile_merge import _Piece, merge_pieces, union_mask
from napari_segany.engine.everything import segment_everything_tiled


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    return load_tiny()


def synthetic(shape=(200, 300), seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 40, shape, dtype=np.uint8)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image[(yy - 100) ** 2 + (xx - 120) ** 2 < 30 ** 2] += 180
    return image


# ------------------------------------------------------------------------------ geometry
@pytest.mark.parametrize("shape,tile,halo", [((200, 300), 64, 8), ((8192, 8192), 1024, 128),
                                             ((1000, 1025), 1024, 128), ((50, 700), 256, 32)])
def test_cores_partition_the_image_with_halo_context(shape, tile, halo):
    grid = TileGrid(shape, tile, halo)
    owner = np.zeros(shape, np.int32) if shape[0] * shape[1] < 1e6 else None
    for r, c in grid.tiles():
        wy0, wy1, wx0, wx1 = grid.window(r, c)
        cy0, cy1, cx0, cx1 = grid.core(r, c)
        assert wy1 - wy0 == min(tile, shape[0]) and wx1 - wx0 == min(tile, shape[1])
        # each core lies in its window, at least `halo` from every inner window edge
        assert wy0 <= cy0 and cy1 <= wy1 and wx0 <= cx0 and cx1 <= wx1
        for core_edge, window_edge, limit in ((cy0, wy0, 0), (cx0, wx0, 0)):
            assert core_edge == limit or core_edge - window_edge >= halo
        for core_edge, window_edge, limit in ((cy1, wy1, shape[0]), (cx1, wx1, shape[1])):
            assert core_edge == limit or window_edge - core_edge >= halo
        if owner is not None:
            owner[cy0:cy1, cx0:cx1] += 1
    if owner is not None:
        assert (owner == 1).all()  # every pixel in exactly one core
    assert grid.core_of(shape[0] - 1, shape[1] - 1) == (grid.ny - 1, grid.nx - 1)


def test_grid_sizes_and_threshold():
    assert TileGrid((8192, 8192), 1024, 128).ny == 11
    assert TileGrid((8192, 8192), 1024, 64).ny == 9
    assert len(TileGrid((500, 500), 1024, 128)) == 1
    starts, cuts = split_axis(300, 64, 8)
    assert starts[0] == 0 and starts[-1] == 300 - 64 and cuts[0] == 0 and cuts[-1] == 300
    assert needs_tiling((2049, 10), 1024) and not needs_tiling((2048, 2048), 1024)
    assert not needs_tiling((2048, 10), 256) and needs_tiling((4097, 10), 2048)  # >= 2048
    assert needs_tiling((600, 10), 256, threshold=500)
    with pytest.raises(ValueError, match="no core"):
        TileGrid((100, 100), 64, 30)


def test_a_prompt_goes_to_the_window_where_it_has_the_most_context():
    grid = TileGrid((200, 300), 64, 8)
    for x, y in [(10, 10), (60, 30), (150, 100), (299, 199)]:
        rc = grid.best_window((y, y + 1, x, x + 1))
        wy0, wy1, wx0, wx1 = grid.window(*rc)
        assert wy0 <= y < wy1 and wx0 <= x < wx1
    rng = np.random.default_rng(0)
    for y, x in zip(rng.integers(0, 200, 200), rng.integers(0, 300, 200)):
        point = (y, y + 1, x, x + 1)
        best = grid._margin(grid.window(*grid.best_window(point)), point)
        assert best == max(grid._margin(grid.window(*rc), point) for rc in grid.tiles())
        assert best >= min(grid.halo, 7)  # near a core border both windows see ~halo around it
    # a box across a core border that one window holds whole goes to that window
    y0, y1, x0, x1 = grid.core(1, 1)
    box = (y0 + 5, y0 + 25, x1 - 20, x1 + 5)
    rc = grid.best_window(box)
    wy0, wy1, wx0, wx1 = grid.window(*rc)
    assert wy0 <= box[0] and box[1] <= wy1 and wx0 <= box[2] and box[3] <= wx1
    assert grid.best_window((0, 200, 0, 300)) is None  # nothing holds the whole image


# ------------------------------------------------------------------------------ decoding
def test_a_box_across_tiles_is_stitched_without_seams():
    tiled = TiledPredictor(fake_model(), tile=64, halo=8)
    tiled.set_image(synthetic())
    crops, scores = tiled.predict_crops(box=[20, 30, 250, 170], multimask_output=True)
    assert len(crops) == 1 and scores.shape == (1,)  # stitched: one mask
    (r0, r1, c0, c1), crop = crops[0]
    mask = np.zeros((200, 300), bool)
    mask[r0:r1, c0:c1] = crop
    # The stand-in's mask is the box interior at low-res precision (4 px per low-res pixel).
    assert mask[33:167, 23:247].all() and not mask[:27].any() and not mask[173:].any()
    assert not mask[:, :17].any() and not mask[:, 253:].any()
    assert len(tiled.decode(box=[20, 30, 250, 170]).tiles) == tiled.grid.ny * tiled.grid.nx


def test_a_prompt_inside_one_window_decodes_as_that_window_untiled(tiny):
    image = synthetic((600, 700))
    tiled = TiledPredictor(tiny, tile=256, halo=32)
    tiled.set_image(image)
    point, box = np.array([[330.0, 290.0]]), np.array([300.0, 250.0, 380.0, 330.0])
    logits = tiled.decode(point, [1], box)
    (row, col), = logits.tiles
    y0, y1, x0, x1 = tiled.grid.window(row, col)
    plain = Predictor(tiny)
    plain.set_image(image[y0:y1, x0:x1])
    masks, scores, low_res = plain.predict(point - [x0, y0], [1], box - [x0, y0, x0, y0])
    np.testing.assert_array_equal(logits.parts[0].low_res[0].numpy(), low_res)
    np.testing.assert_allclose(logits.scores, scores)
    for i in range(3):
        bbox, crop = tiled.mask(logits, i)
        full = np.zeros(image.shape, bool)
        if bbox is not None:
            full[bbox[0]:bbox[1], bbox[2]:bbox[3]] = crop
        np.testing.assert_array_equal(full[y0:y1, x0:x1], masks[i])
        assert not full[:y0].any() and not full[y1:].any()


def test_each_stitched_core_is_its_tiles_own_decode(tiny):
    image = synthetic((600, 700))
    tiled = TiledPredictor(tiny, tile=256, halo=32)
    tiled.set_image(image)
    box = np.array([40.0, 60.0, 650.0, 540.0])
    logits = tiled.decode(box=box)
    assert len(logits.tiles) > 4
    full = tiled.predict(box=box)[0][0]
    for part in logits.parts:
        y0, y1, x0, x1 = part.window
        plain = Predictor(tiny)
        plain.set_image(image[y0:y1, x0:x1])
        clipped = [max(box[0], x0) - x0, max(box[1], y0) - y0, min(box[2], x1) - x0, min(box[3], y1) - y0]
        own = plain.predict(box=clipped, multimask_output=False)[0][0]
        cy0, cy1, cx0, cx1 = part.region
        np.testing.assert_array_equal(full[cy0:cy1, cx0:cx1], own[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0])


def test_tiles_are_embedded_on_demand_and_come_back_from_the_store(tiny, tmp_path):
    image = synthetic((600, 700))
    first = TiledPredictor(tiny, tile=256, halo=32, store=EmbeddingStore(tmp_path, dtype="float32"))
    first.set_image(image)
    masks, _ = first.predict([[120, 100]], [1])
    assert first.encodes == 1  # one tile, not the 12 of the image
    assert sum(1 for _ in first.iter_embed()) > 0 and first.encodes == len(first.grid)
    again = TiledPredictor(tiny, tile=256, halo=32, store=EmbeddingStore(tmp_path))
    again.set_image(image)
    np.testing.assert_array_equal(again.predict([[120, 100]], [1])[0], masks)
    assert list(again.iter_embed()) == [] and again.encodes == 0  # resumable: all done


def test_tiled_session_refines_in_the_same_tile_and_cycles_candidates():
    model = fake_model()
    tiled = TiledPredictor(model, tile=64, halo=8)
    tiled.set_image(synthetic())
    session = InteractiveSession(tiled)
    session.set_prompts(group_prompts([[150, 100]], [1]))
    first = session.masks[0]
    assert first.n_candidates == 3 and first.bbox is not None
    assert session.cycle_candidate().candidate != first.candidate
    session.set_prompts(group_prompts([[150, 100], [152, 101]], [1, 1]))
    assert model.decode_calls[-1]["mask_input"] is not None  # SAM's refinement feedback
    session.set_prompts(group_prompts(boxes=[[10, 10, 290, 190]]))
    (mask,) = session.masks
    assert mask.n_candidates == 1 and mask.bbox[0] <= 15 and mask.bbox[1] >= 185


def test_large_images_are_read_window_by_window(tiny):
    """No full-image copies: numpy's peak stays far below one uint16 plane (32 MiB; a float32
    copy would be 64 MiB); the contrast percentiles read a sample of ~4 M pixels (8 MiB)."""
    image = np.random.default_rng(0).integers(0, 4000, (4096, 4096), dtype=np.uint16)
    tiled = TiledPredictor(fake_model(), tile=64, halo=8, cache=EmbeddingCache(1 << 20))
    tracemalloc.start()
    tiled.set_image(image)
    tiled.predict_crops(box=[100, 100, 600, 500])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 12 << 20, f"numpy peak {peak / 2**20:.1f} MiB"


# ------------------------------------------------------------------------------ everything
def components(rgb, embedding):
    """A stand-in everything method: the connected bright regions of the tile."""
    yield Progress(0, 1, "components")
    lab, n = ndimage.label(rgb[..., 0] > 127)
    records = []
    for i in range(1, n + 1):
        m = CompactMask.from_dense(lab == i)
        y0, x0, y1, x1 = m.bbox
        records.append(Record(m, {"area": m.area, "bbox": [x0, y0, x1 - 1 - x0, y1 - 1 - y0],
                                  "predicted_iou": 0.9, "crop_box": [0, 0, 1, 1]}))
    return EverythingResult(records, rgb.shape[:2], "components", n)


def test_everything_per_tile_merges_duplicates_and_joins_objects_across_tiles():
    image = np.zeros((300, 400), np.uint8)
    yy, xx = np.mgrid[:300, :400]
    for cy, cx, r in [(30, 30, 10), (60, 160, 14), (100, 60, 9), (200, 100, 11), (250, 350, 20)]:
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 255
    image[140:160, 20:380] = 255  # a bar longer than any window
    result = segment_everything_tiled(image, None, tile=128, halo=24, tile_runner=components)
    truth, n = ndimage.label(image > 127)
    assert len(result) == n
    for i in range(1, n + 1):  # each object is exactly one record, with all its pixels
        ids = np.unique(result.labels[truth == i])
        assert len(ids) == 1 and ids[0] > 0
        assert result.records[ids[0] - 1]["area"] == (truth == i).sum()


def test_merge_prefers_the_tile_that_saw_the_object_whole():
    shape = (100, 200)
    whole = np.zeros(shape, bool)
    whole[40:60, 90:130] = True
    cut_view = whole.copy()
    cut_view[:, 120:] = False  # tile A's window ends at x=120
    a = _Piece(CompactMask.from_dense(cut_view), {"predicted_iou": 0.99}, 0.99, True, {(0, 0)},
               [(0, 100, 0, 120)])
    b = _Piece(CompactMask.from_dense(whole), {"predicted_iou": 0.5}, 0.5, False, {(0, 1)},
               [(0, 100, 80, 200)])
    kept = merge_pieces([a, b])
    assert len(kept) == 1 and kept[0] is b
    other = _Piece(CompactMask.from_dense(np.roll(whole, 30, axis=0)), {}, 0.9, False, {(0, 0)},
                   [(0, 100, 0, 120)])
    assert len(merge_pieces([a, b, other])) == 2
    u = union_mask(CompactMask.from_dense(cut_view), CompactMask.from_dense(whole))
    assert u.area == whole.sum() and np.array_equal(u.decode(), whole)


def test_everything_with_a_real_method_runs_per_tile_on_cached_embeddings(tiny):
    image = synthetic((400, 500))
    cache = EmbeddingCache()
    result = segment_everything_tiled(image, tiny, "grid", tile=256, halo=32, cache=cache,
                                      points_per_side=4, pred_iou_thresh=0,
                                      stability_score_thresh=0)
    grid = TileGrid(image.shape, 256, 32)
    assert len(cache) == len(grid) and result.image_shape == (400, 500)
    assert result.n_prompts == 16 * len(grid)
    for record in result.records:
        x, y, w, h = record["bbox"]
        assert 0 <= x and x + w < 500 and 0 <= y and y + h < 400
        assert record["segmentation"].shape == (400, 500)

"""Propagation through stacks (engine, no Qt).

The logic is checked against the truth with a stand-in predictor (``Oracle``): its
"embedding" is the slice's foreground and it segments the bright connected component the
prompts point at, so the propagated track must follow a synthetic disk that drifts and
shrinks through the stack, past a distractor, and stop where the disk is lost.  The
mechanics through the real Predictor, encoder hooks and cache use a tiny SAM with
synthesized (random) weights.
"""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import ndimage

import napari_segany as nsa
from napari_segany.engine.embeddings import Embedding, EmbeddingCache
from napari_segany.engine.errors import Cancelled, ImageError
from napari_segany.engine.progress import run
from napari_segany.engine.propagation import (
    PromptOptions, SliceStack, StopRules, iter_propagate, iter_propagate_stack,
)
from napari_segany.engine.propagation.walk import stack_from_array
from napari_segany.engine.propagation.prompts import (
    anisotropy, choose_candidate, enlarged_box, inner_points, rejection,
)

NO_RULES = StopRules(min_score=None, max_area_ratio=None)
SHAPE = (96, 128)


# --- the stand-in predictor and the synthetic truth ------------------------------------------
class Oracle:
    """A perfect segmenter of bright objects: the component under the prompts.

    Among the foreground components overlapping the box, it keeps the one holding a
    positive point, else the one covering most of the box.  ``scores``: slice -> predicted
    IoU (default 0.95); the slice is known from the embedding (its first pixel row holds it).
    """

    def __init__(self, scores=None, supports_mask_input=True):
        self.spec = SimpleNamespace(name="oracle", supports_mask_input=supports_mask_input)
        self.model = SimpleNamespace(spec=self.spec, checkpoint_path="oracle")
        self.scores = scores or {}
        self.encoded, self.calls = [], []

    def encode(self, rgb):
        self.encoded.append(int(rgb[0, 0, 0]))
        return Embedding(torch.from_numpy(rgb[..., 0].copy())[None, None], rgb.shape[:2])

    def set_embedding(self, embedding):
        self.features = embedding.features[0, 0].numpy()
        self.original_size = embedding.original_size

    def decode_lowres(self, points, labels, box, mask_input, multimask_output):
        self.calls.append(SimpleNamespace(points=points, labels=labels, box=box,
                                          mask_input=mask_input, multimask=multimask_output))
        components, n = ndimage.label(self.features > 127)
        x0, y0, x1, y1 = np.round(box).astype(int)
        window = components[y0:y1 + 1, x0:x1 + 1]
        chosen = 0
        for x, y in (points if points is not None else []):
            chosen = chosen or components[int(y), int(x)]
        if not chosen and window.any():
            chosen = np.bincount(window[window > 0]).argmax()
        mask = (components == chosen) & (chosen > 0)
        logits = torch.from_numpy(np.where(mask, 5.0, -5.0).astype(np.float32))[None, None]
        score = self.scores.get(int(self.features[0, 0]), 0.95)
        return logits, torch.tensor([[score]])

    def upsample(self, low_res, return_logits=False):
        return low_res if return_logits else low_res > 0


def disk(center, radius, shape=SHAPE):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - center[0]) ** 2 + (xx - center[1]) ** 2 <= radius ** 2


def drifting_disk(n=24, seed_slice=8, vanish_at=None, distractor=True):
    """(n, Y, X) uint8 stack and its (n, Y, X) truth: a disk drifting 2 px/slice in x and
    1 px/slice in y, shrinking with distance from the seed slice; a static distractor disk
    near its path.  Pixel (0, 0) holds the slice number (the Oracle reads it)."""
    volume = np.zeros((n, *SHAPE), np.uint8)
    truth = np.zeros((n, *SHAPE), bool)
    for z in range(n):
        radius = 14 - 0.4 * abs(z - seed_slice)
        if vanish_at is None or z < vanish_at:
            truth[z] = disk((30 + z, 20 + 2 * z), radius)
        volume[z][truth[z]] = 200
        if distractor:
            volume[z][disk((80, 64), 9)] = 200
        volume[z, 0, 0] = z
    return volume, truth


# --- the logic against the truth -----------------------------------------------------------
def test_the_track_follows_a_drifting_shrinking_disk_both_ways():
    volume, truth = drifting_disk()
    oracle = Oracle()
    result = nsa.propagate(volume, truth[8], 8, oracle)
    assert result.stops == {"forward": "end", "backward": "end"}
    assert result.indices == list(range(24))
    for z in range(24):
        assert np.array_equal(result.mask(z), truth[z]), z  # never the distractor
    assert np.array_equal(result.to_volume(), truth)
    assert [r.index for r in result.reports] == [8, *range(9, 24), *range(7, -1, -1)]
    assert all(0.5 < r.area_ratio < 2 for r in result.reports[1:])


def test_it_stops_where_the_object_vanishes_and_reports_why():
    volume, truth = drifting_disk(vanish_at=15)
    result = nsa.propagate(volume, truth[8], 8, Oracle(), direction="forward")
    assert result.stops == {"forward": "empty"}
    assert result.indices == list(range(8, 15))
    last = result.reports[-1]
    assert (last.index, last.status, last.area) == (15, "empty", 0)
    assert "forward: 6 slice(s), to slice 14; stopped: empty" in result.summary()


def test_low_score_stops_and_the_range_is_respected():
    volume, truth = drifting_disk()
    result = nsa.propagate(volume, truth[8], 8, Oracle(scores={12: 0.3}), stop_at=(5, 20))
    assert result.stops == {"forward": "low_score", "backward": "range"}
    assert result.indices == list(range(5, 12))
    assert result.reports[-1].index == 5  # nothing decoded outside the range
    rejected = [r for r in result.reports if r.rejected]
    assert [(r.index, r.status, r.score) for r in rejected] == [(12, "low_score", pytest.approx(0.3))]


def test_area_jump_stops_unless_the_slices_are_thick():
    volume, truth = drifting_disk(distractor=False)
    big = disk((40, 40), 30)
    volume[11][big] = 200  # the object merges with a large blob on slice 11
    result = nsa.propagate(volume, truth[8], 8, Oracle(), direction="forward")
    assert result.stops == {"forward": "area_jump"} and result.indices == [8, 9, 10]
    assert result.reports[-1].area_ratio > 2
    # z spacing 3x the pixel size: 2 ** 3 = 8x per slice is plausible, the walk goes on
    thick = nsa.propagate(volume, truth[8], 8, Oracle(), direction="forward", scale=(3, 1, 1))
    assert 11 in thick.indices


def test_backward_only_and_an_empty_slice_walked_past():
    volume, truth = drifting_disk(distractor=False)
    volume[5][truth[5]] = 0  # out of focus for one slice
    rules = StopRules(stop_on_empty=False)
    result = nsa.propagate(volume, truth[8], 8, Oracle(), direction="backward", rules=rules)
    assert result.stops == {"backward": "end"}
    assert 5 not in result.indices and result.indices == [0, 1, 2, 3, 4, 6, 7, 8]
    assert [r.status for r in result.reports if r.index == 5] == ["skipped"]
    assert np.array_equal(result.mask(3), truth[3])


def test_prompts_are_box_inner_points_and_previous_logits():
    volume, truth = drifting_disk()
    oracle = Oracle()
    nsa.propagate(volume, truth[8], 8, oracle, direction="forward", stop_at=(8, 10),
                  prompts=PromptOptions(n_points=3))
    first, second = oracle.calls
    assert first.mask_input is None and first.multimask is False  # the seed has no logits
    x0, y0, x1, y1 = first.box
    rows, cols = np.nonzero(truth[8])
    assert x0 < cols.min() and y0 < rows.min() and x1 > cols.max() and y1 > rows.max()
    assert len(first.points) == 3 and first.labels.tolist() == [1, 1, 1]
    assert all(truth[8][int(y), int(x)] for x, y in first.points)
    assert np.array_equal(second.mask_input > 0, truth[9])
    no_mask = Oracle(supports_mask_input=False)
    nsa.propagate(volume, truth[8], 8, no_mask, direction="forward", stop_at=(8, 10))
    assert all(c.mask_input is None for c in no_mask.calls)


def test_4d_walks_the_chosen_axis_at_the_fixed_position():
    volume, truth = drifting_disk(n=6, seed_slice=2)
    tzyx = np.zeros((3, 6, *SHAPE), np.uint8)
    tzyx[1] = volume  # only t = 1 holds the object
    tzyx[:, :, 0, 0] = np.arange(6)  # the Oracle reads z
    along_z = nsa.propagate(tzyx, truth[2], (1, 2), Oracle(), axis=1)
    assert along_z.indices == list(range(6)) and along_z.position == (1, 2)
    labels = np.zeros(tzyx.shape, np.uint16)
    along_z.write_into(labels, 7)
    assert np.array_equal(labels[1] == 7, truth & (np.arange(6) != 2)[:, None, None])
    assert not labels[0].any() and not labels[2].any()
    along_t = nsa.propagate(tzyx, truth[2], (1, 2), Oracle(), axis=0)
    assert along_t.stops == {"forward": "empty", "backward": "empty"}  # t = 0, 2 are empty
    with pytest.raises(ValueError, match="before Y, X"):
        nsa.propagate(tzyx, truth[2], (1, 2), Oracle(), axis=2)


def test_writing_preserves_other_objects_and_replaces_the_old_track():
    volume, truth = drifting_disk(n=6, seed_slice=2, distractor=False)
    result = nsa.propagate(volume, truth[2], 2, Oracle())
    labels = np.zeros(volume.shape, np.uint8)
    labels[4][truth[4]] = 3  # another object where the track goes
    labels[0, 90:, 120:] = 5  # stale pixels of the object itself
    result.write_into(labels, 5)
    assert (labels[4][truth[4]] == 3).all()
    assert not (labels[0, 90:, 120:] == 5).any() and (labels[0][truth[0]] == 5).all()
    assert not (labels[2] == 5).any()  # the seed slice is the caller's (already committed)
    result.write_into(labels, 5, preserve=False)
    assert (labels[4][truth[4]] == 5).all()


# --- cache, prefetch, cancel --------------------------------------------------------------
def test_a_warm_run_encodes_nothing():
    volume, truth = drifting_disk()
    cache, oracle = EmbeddingCache(), Oracle()
    cold = nsa.propagate(volume, truth[8], 8, oracle, cache=cache, prefetch=2)
    assert sorted(oracle.encoded) == [z for z in range(24) if z != 8]  # each slice once
    assert cold.encoded == 23 == len(cache)
    oracle.encoded.clear()
    warm = nsa.propagate(volume, truth[8], 8, oracle, cache=cache)
    assert oracle.encoded == [] and warm.encoded == 0 and warm.indices == cold.indices


def test_slices_past_a_stop_are_encoded_at_most_prefetch_ahead():
    volume, truth = drifting_disk(vanish_at=12)
    oracle = Oracle()
    result = nsa.propagate(volume, truth[8], 8, oracle, prefetch=2)
    assert result.stops["forward"] == "empty" and result.reports[-1].index == 0
    visited = {r.index for r in result.reports} - {8}
    assert visited <= set(oracle.encoded) <= visited | {13, 14}  # 15..23 never


def test_a_lazy_source_is_read_once_per_slice_and_the_cache_filled():
    volume, truth = drifting_disk(n=10, seed_slice=4)
    reads = []
    plain = stack_from_array(volume, 0, (4,))
    stack = SliceStack(plain.length, lambda i: reads.append(i) or plain.read(i), plain.to_rgb)
    oracle, cache = Oracle(), EmbeddingCache()
    cold = run(iter_propagate_stack(stack, truth[4], 4, oracle, cache=cache, prefetch=2))
    assert cold.encoded == 9 == len(cache)
    assert sorted(reads) == list(range(10))  # the seed slice once (checked), the others once
    warm = run(iter_propagate_stack(stack, truth[4], 4, oracle, cache=cache, prefetch=2))
    assert warm.encoded == 0 and warm.indices == cold.indices
    # prefetch=0: each slice encoded only when the walk needs it (bench_propagation's "on demand")
    on_demand = run(iter_propagate_stack(stack, truth[4], 4, Oracle(), prefetch=0))
    assert on_demand.encoded == 9 and on_demand.indices == cold.indices


def test_cancel_raises_writes_nothing_and_leaves_no_thread():
    volume, truth = drifting_disk()
    before = set(threading.enumerate())
    cancel = threading.Event()
    job = iter_propagate(volume, truth[8], 8, Oracle(), cancel=cancel)
    seen = []

    def callback(report):
        seen.append(report)
        if report.step >= 3:
            cancel.set()

    with pytest.raises(Cancelled):
        run(job, callback)
    assert set(threading.enumerate()) == before
    # closing the generator (a caller returning False) also stops the prefetch thread
    with pytest.raises(Cancelled):
        nsa.propagate(volume, truth[8], 8, Oracle(), callback=lambda r: r.step < 2)
    assert set(threading.enumerate()) == before


def test_user_errors_say_what_to_do():
    volume, truth = drifting_disk(n=6, seed_slice=2)
    with pytest.raises(ValueError, match="empty on slice 2"):
        nsa.propagate(volume, np.zeros(SHAPE, bool), 2, Oracle())
    with pytest.raises(ValueError, match=r"\(Y, X\)"):
        nsa.propagate(volume, truth[2][:10], 2, Oracle())
    with pytest.raises(ValueError, match="hold the seed slice"):
        nsa.propagate(volume, truth[2], 2, Oracle(), stop_at=(3, 5))
    with pytest.raises(ValueError, match="direction"):
        nsa.propagate(volume, truth[2], 2, Oracle(), direction="up")
    with pytest.raises(ImageError, match="stack of shape"):
        nsa.propagate(volume[0], truth[2], 2, Oracle())
    with pytest.raises(ValueError, match="leading axes"):
        nsa.propagate(volume[None], truth[2], 2, Oracle(), axis=1)
    nan_stack = volume.astype(np.float32)
    nan_stack[3, 5, 5] = np.nan
    with pytest.raises(ImageError, match="NaN"):  # raised in the prefetch thread, re-raised here
        nsa.propagate(nan_stack, truth[2], 2, Oracle(), contrast_limits=(0, 255))


# --- prompt helpers -------------------------------------------------------------------------
def test_inner_points_are_deep_inside_and_spread():
    crop = np.zeros((40, 200), bool)
    crop[5:35, 5:195] = True
    (first, *others) = inner_points(crop, 3)
    assert 15 <= first[0] <= 24 and crop[tuple(first)]
    assert all(crop[tuple(p)] for p in others) and abs(others[0][1] - first[1]) > 50
    assert inner_points(np.ones((1, 1), bool), 4).tolist() == [[0, 0]]
    big = disk((300, 300), 250, (600, 600))  # subsampled distance transform
    (p,) = inner_points(big, 1)
    assert np.hypot(*(p - 300)) < 10


def test_enlarged_box_candidate_choice_rules_and_anisotropy():
    assert enlarged_box((10, 20, 30, 50), (64, 64), 0.1, 2.0).tolist() == [28, 8, 51, 21]  # 2 px
    assert enlarged_box((10, 40, 20, 70), (64, 96), 0.1, 2.0).tolist() == [15, 7, 74, 42]  # 10 %
    assert enlarged_box((0, 64, 0, 64), (64, 64), 0.5, 2.0).tolist() == [0, 0, 63, 63]
    previous = np.where(disk((10, 10), 5, (32, 32)), 1.0, -1.0)
    candidates = np.stack([np.where(disk((10, 10), r, (32, 32)), 1.0, -1.0) for r in (2, 5, 12)])
    assert choose_candidate(candidates, np.array([0.9, 0.5, 0.8]), previous) == 1
    assert choose_candidate(candidates, np.array([0.9, 0.5, 0.8]), None) == 0
    rules = StopRules(min_score=0.7, max_area_ratio=2.0, min_area=5)
    assert rejection(0.9, 4, 100, rules) == ("empty", 0.04)
    assert rejection(0.6, 100, 100, rules)[0] == "low_score"
    assert rejection(0.9, 250, 100, rules)[0] == "area_jump"
    assert rejection(0.9, 250, 100, rules, steps=2.0)[0] is None
    assert anisotropy((2.0, 0.5, 0.5), 0) == 4.0 and anisotropy(None, 0) == 1.0
    with pytest.raises(ValueError, match="max_area_ratio"):
        StopRules(max_area_ratio=0.5)


# --- the real pipeline: tiny SAM with synthesized weights ---------------------------------------
TINY_KWARGS = dict(embed_dim=64, depth=2, num_heads=2, global_attn_indexes=(1,), image_size=256)


@pytest.fixture(scope="module")
def tiny_sam():
    from napari_segany.models import registry
    from napari_segany.models.registry import ModelSpec
    from napari_segany.models.sam.build import build_sam_vit

    torch.manual_seed(0)
    model = build_sam_vit(**TINY_KWARGS).eval()
    model.spec = ModelSpec(
        name="tiny_sam", family="sam", task=registry.PROMPTABLE,
        builder="napari_segany.models.sam.build:build_sam_vit", builder_kwargs=TINY_KWARGS,
        input_size=256, file_name="tiny_sam.pt", license="test weights",
        checkpoint_format="state_dict")
    model.checkpoint_path = "synthesized"
    return model


def test_tiny_sam_mechanics_through_the_predictor_and_the_cache(tiny_sam, monkeypatch):
    rng = np.random.default_rng(0)
    volume = rng.integers(0, 255, (7, 64, 80), dtype=np.uint8)
    seed = np.zeros((64, 80), bool)
    seed[20:40, 30:50] = True
    calls = []
    decode = tiny_sam.decode
    monkeypatch.setattr(tiny_sam, "decode", lambda *a, **k: calls.append(k) or decode(*a, **k))
    cache = EmbeddingCache()
    result = nsa.propagate(volume, seed, 3, tiny_sam, rules=NO_RULES, cache=cache)
    assert result.stops == {"forward": "end", "backward": "end"} and len(result.reports) == 7
    assert len(cache) == 6 and result.encoded == 6  # the seed slice is never embedded
    assert [k["multimask_output"] for k in calls] == [False] * 6
    assert calls[0]["mask_input"] is None and calls[1]["mask_input"].shape == (1, 1, 64, 64)
    assert calls[3]["mask_input"] is None  # backward starts again from the seed
    # random weights score low: the default rules stop at once
    strict = nsa.propagate(volume, seed, 3, tiny_sam, cache=cache)
    assert strict.stops == {"forward": "low_score", "backward": "low_score"}
    assert strict.indices == [3] and strict.encoded == 0


def test_tiny_sam_cancel_during_encoding_stops_within_a_block(tiny_sam):
    from napari_segany.engine.embeddings.encoding import encoder_steps

    volume = np.random.default_rng(1).integers(0, 255, (6, 64, 80), dtype=np.uint8)
    seed = np.zeros((64, 80), bool)
    seed[20:40, 30:50] = True
    cancel, after_cancel = threading.Event(), []

    def slow_block(*_):
        after_cancel.append(cancel.is_set())
        time.sleep(0.2)  # the GIL is released, as during real torch work

    handles = [b.register_forward_pre_hook(slow_block) for b in encoder_steps(tiny_sam)]
    before = set(threading.enumerate())
    cache = EmbeddingCache()
    try:
        job = iter_propagate(volume, seed, 2, tiny_sam, rules=NO_RULES, cache=cache, cancel=cancel)
        next(job)  # the run starts, the prefetch thread encodes slice 3
        time.sleep(0.1)
        cancel.set()
        with pytest.raises(Cancelled):
            run(job)
    finally:
        for h in handles:
            h.remove()
    # the block running when cancelled, at most one more started (and refused): not 5 slices
    assert sum(after_cancel) <= 2 and len(cache) == 0
    time.sleep(0.05)  # iter_encode's helper thread returns right after reporting
    assert set(threading.enumerate()) == before


def test_mask_crop_equals_the_predictors_upsampling(tiny_sam):
    from scipy import ndimage as ndi

    from napari_segany.engine.interactive import Predictor
    from napari_segany.engine.propagation.upsample import mask_crop

    rng = np.random.default_rng(5)
    predictor = Predictor(tiny_sam)
    for size in ((64, 80), (300, 451), (256, 256), (40, 500)):
        predictor.set_embedding(torch.zeros(1, 256, 16, 16), size)
        for _ in range(5):
            smooth = ndi.gaussian_filter(rng.normal(size=(64, 64)), 3) * 30 - rng.uniform(0.5, 3)
            low_res = torch.from_numpy(smooth.astype(np.float32))[None, None]
            expected = predictor.upsample(low_res)[0, 0].numpy()
            bbox, crop = mask_crop(predictor, low_res)
            got = np.zeros(size, bool)
            if bbox is not None:
                got[bbox[0]:bbox[1], bbox[2]:bbox[3]] = crop
            assert (got != expected).sum() <= 2  # float rounding of logits within ~1e-5 of 0
        assert mask_crop(predictor, torch.full((1, 1, 64, 64), -1.0))[0] is None

"""Mechanics of the SAM 2 video engine on a tiny random-weights SAM 2 (parity of the
official semantics is in tests/models/test_sam2_video.py)."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from _sam2_tiny import load_tiny_sam2
from napari_segany.engine.errors import Cancelled, ImageError, PromptError
from napari_segany.engine.progress import Progress, run
from napari_segany.engine.video import VideoPredictor
from napari_segany.engine.video.frames import FrameSource
from napari_segany.engine.video.memory_bank import FrameOutput, ObjectTrack
from napari_segany.engine.video.spill import SpillStore

T, H, W = 10, 40, 56


@pytest.fixture(scope="module")
def model():
    return load_tiny_sam2()


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(0).integers(0, 255, (T, H, W, 3), dtype=np.uint8)


def _prompted(model, frames, **kwargs):
    predictor = VideoPredictor(model, **kwargs)
    state = predictor.init_state(frames)
    predictor.add_new_points_or_box(state, 3, 5, points=[[10, 20]], labels=[1])
    predictor.add_new_points_or_box(state, 3, 2, box=[5, 5, 30, 30])
    return predictor, state


def test_prompt_returns_every_object_at_frame_size(model, frames, one_thread):
    predictor = VideoPredictor(model)
    state = predictor.init_state(frames)
    frame_idx, ids, logits = predictor.add_new_points_or_box(state, 3, 5, points=[[10, 20]],
                                                             labels=[1])
    assert (frame_idx, ids, logits.shape, logits.dtype) == (3, [5], (1, 1, H, W), np.float32)
    _, ids, logits = predictor.add_new_points_or_box(state, 3, 2, box=[5, 5, 30, 30],
                                                     points=[[12, 12]], labels=[0])
    assert ids == [5, 2] and logits.shape == (2, 1, H, W)
    _, ids, logits = predictor.add_new_points_or_box(state, 6, 9, points=[[1, 1]], labels=[1])
    assert np.all(logits[:2] == -1024.0)  # objects without output on that frame
    predictor.add_new_points_or_box(state, 6, 9, points=[[5, 5]], labels=[0], clear_old_points=False)
    coords, labels = state.bank.tracks[9].points[6]
    assert labels.tolist() == [[1, 0]] and coords.shape == (1, 2, 2)
    with pytest.raises(PromptError, match="box"):
        predictor.add_new_points_or_box(state, 6, 9, box=[1, 1, 9, 9], clear_old_points=False)


def test_propagation_forward_reverse_and_both(model, frames, one_thread):
    predictor, state = _prompted(model, frames)
    forward = list(predictor.propagate_in_video(state))
    assert [f for f, _, _ in forward] == list(range(3, T))
    assert all(ids == [5, 2] and lg.shape == (2, 1, H, W) for _, ids, lg in forward)
    backward = [f for f, _, _ in predictor.propagate_in_video(state, reverse=True)]
    assert backward == [3, 2, 1, 0]
    assert [f for f, _, _ in predictor.propagate_in_video(state, start_frame_idx=5,
                                                          max_frame_num_to_track=2)] == [5, 6, 7]
    steps = []
    result = run(predictor.iter_propagate(state, both_directions=True), steps.append)
    assert [p.step for p in steps] == list(range(1, T + 2)) and steps[-1].total == T + 1
    assert list(result.frame_indices) == list(range(T)) and result.obj_ids == [5, 2]
    assert result.labels.shape == (T, H, W) and result.labels.dtype == np.uint8
    assert set(np.unique(result.labels)) <= {0, 2, 5}
    masks = result.masks()
    assert masks.shape == (T, 2, H, W) and np.array_equal(result.labels > 0, masks.any(axis=1))
    last = {f: lg for f, _, lg in predictor.propagate_in_video(state, start_frame_idx=T - 1)}
    winner = np.where(last[T - 1].max(axis=0)[0] > 0, np.array([5, 2])[last[T - 1][:, 0].argmax(0)], 0)
    np.testing.assert_array_equal(result.labels[-1], winner)  # highest positive logit wins


def test_propagation_can_be_cancelled(model, frames, one_thread):
    predictor, state = _prompted(model, frames)
    with pytest.raises(Cancelled):
        run(predictor.iter_propagate(state), lambda p: p.step < 2)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        run(predictor.iter_propagate(state, cancel=cancel))
    assert isinstance(next(predictor.iter_propagate(state)), Progress)


def test_spilled_memories_give_identical_results(model, frames, one_thread, tmp_path):
    predictor, state = _prompted(model, frames, ram_frames=None)
    in_ram = predictor.propagate(state, both_directions=True)
    predictor, state = _prompted(model, frames, ram_frames=2, spill_dir=tmp_path)
    spilled = predictor.propagate(state, both_directions=True)
    assert state.bank.spilled_frames() > 0 and any(tmp_path.iterdir())
    np.testing.assert_array_equal(spilled.labels, in_ram.labels)
    # a correction on a spilled frame reads its logits back
    predictor.add_new_points_or_box(state, 8, 5, points=[[30, 30]], labels=[0])
    state.close()
    assert not any(tmp_path.iterdir())


def test_correction_becomes_conditioning_and_survives_propagation(model, frames, one_thread):
    predictor, state = _prompted(model, frames)
    list(predictor.propagate_in_video(state))
    _, _, corrected = predictor.add_new_points_or_box(state, 7, 5, points=[[40, 10]], labels=[1])
    again = dict((f, lg) for f, _, lg in predictor.propagate_in_video(state))
    assert 7 in state.bank.tracks[5].cond
    np.testing.assert_array_equal(again[7][0], corrected[0])


def test_official_correction_rule_is_available(model, frames, one_thread):
    predictor, state = _prompted(model, frames, add_all_frames_to_correct_as_cond=False)
    list(predictor.propagate_in_video(state))
    predictor.add_new_points_or_box(state, 7, 5, points=[[40, 10]], labels=[1])
    list(predictor.propagate_in_video(state))
    assert 7 not in state.bank.tracks[5].cond and 7 in state.bank.tracks[5].non_cond


def test_mask_prompt_is_the_output(model, frames, one_thread):
    predictor = VideoPredictor(model)
    state = predictor.init_state(frames)
    mask = np.zeros((H, W), bool)
    mask[10:30, 20:50] = True
    _, _, logits = predictor.add_new_mask(state, 0, 1, mask)
    ours = logits[0, 0] > 0  # the mask through the low-res (32 x 32 here) logits and back
    assert (ours & mask).sum() / (ours | mask).sum() > 0.85
    assert np.abs(logits).max() <= 10.0 + 1e-4  # +-10 logits, as the official
    assert len(list(predictor.propagate_in_video(state))) == T


def test_features_stay_bounded(model, frames, one_thread):
    predictor, state = _prompted(model, frames, feature_cache_frames=2)
    list(predictor.propagate_in_video(state))
    assert len(state.features._items) <= 2
    assert state.features.computed == T - 3  # each tracked frame encoded once


def test_input_errors(model, frames):
    predictor = VideoPredictor(model)
    state = predictor.init_state(frames)
    with pytest.raises(PromptError, match="at least one object"):
        list(predictor.propagate_in_video(state))
    for bad in (dict(frame_idx=T), dict(frame_idx=-1), dict(obj_id=0), dict(obj_id="a")):
        kwargs = dict(frame_idx=0, obj_id=1, points=[[1, 1]], labels=[1]) | bad
        with pytest.raises(PromptError):
            predictor.add_new_points_or_box(state, **kwargs)
    with pytest.raises(PromptError, match="in the frame"):
        predictor.add_new_points_or_box(state, 0, 1, points=[[W + 5, 1]], labels=[1])
    with pytest.raises(PromptError, match="labels"):
        predictor.add_new_points_or_box(state, 0, 1, points=[[1, 1]], labels=[2])
    with pytest.raises(PromptError, match="shape"):
        predictor.add_new_mask(state, 0, 1, np.ones((H + 1, W), bool))
    with pytest.raises(ValueError, match="SAM 2"):
        VideoPredictor(torch.nn.Linear(1, 1))
    for stack in (np.zeros((H, W)), np.zeros((2, H, W, 2)), np.zeros((2, H, W), complex)):
        with pytest.raises(ImageError):
            predictor.init_state(stack)
    predictor.reset_state(state)
    assert state.obj_ids == []


def test_frame_source_normalises_the_whole_stack():
    stack = np.zeros((3, 4, 5), np.uint16)
    stack[0] = 100
    stack[2] = 1000
    source = FrameSource(stack, 16, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert source.rgb(0).shape == (4, 5, 3) and source.rgb(0).dtype == np.uint8
    assert source.rgb(1).max() == 0 and source.rgb(2).min() == 255  # stack-wide percentiles
    assert source.model_input(0).shape == (1, 3, 16, 16)
    limits = FrameSource(stack, 16, (0, 0, 0), (1, 1, 1), contrast_limits=(0, 2000))
    assert limits.rgb(2)[0, 0, 0] == 128
    with pytest.raises(ImageError, match="NaN"):
        FrameSource(np.full((2, 4, 4), np.nan), 16, (0, 0, 0), (1, 1, 1))


def _out() -> FrameOutput:
    return FrameOutput(torch.zeros(1, 4), torch.zeros(1, 1), None)


def test_memory_selection_rules():
    track = ObjectTrack()
    track.cond = {10: _out(), 2: _out()}
    track.non_cond = {t: _out() for t in range(3, 10)} | {11: _out(), 12: _out()}
    # forward at 9: conditioning frames first (t_pos 0, insertion order), then 3..8 (t_pos 1..6)
    assert track.select_memories(9, False, 7) == [(0, 10), (0, 2)] + [(k, 2 + k) for k in range(1, 7)]
    # reverse at 9: the following frames, nearest last (t_pos 6 = frame 10 is conditioning,
    # 13..15 missing)
    assert track.select_memories(9, True, 7) == [(0, 10), (0, 2), (4, 12), (5, 11)]
    pointers, norm = track.select_pointers(9, False, num_frames=20)
    assert [d for d, _ in pointers] == [7] + list(range(1, 7)) and norm == 15
    pointers, norm = track.select_pointers(9, True, num_frames=12)
    assert [d for d, _ in pointers] == [1, 2] and norm == 11  # 10 is 1 ahead; 12 is past the end


def test_spill_store_round_trip(tmp_path):
    store = SpillStore(tmp_path)
    tensors = {"a": torch.randn(2, 3).bfloat16(), "b": torch.randn(4, 1, 5)}
    for key, t in tensors.items():
        store.put(key, t)
    for key, t in tensors.items():
        assert torch.equal(store.get(key), t) and store.get(key).dtype == t.dtype
    store.drop("a")
    assert "a" not in store and len(store) == 1
    store.close()
    assert not any(tmp_path.iterdir())

"""Parity of our ``VideoPredictor`` with the official ``SAM2VideoPredictor`` (sam2 1.1.0):
the README's 8-frame clip, a point on frame 0, ``propagate_in_video``; every frame's
logits, low-res logits, object score and object pointer.

The frames are the case's PIL-decoded JPEG frames (``video__frames_uint8``), given as a
numpy stack; our frame source resizes them with PIL's bicubic filter as the official
loader does.  No hole filling (README: the official CPU install skips it).
"""
from __future__ import annotations

import pytest

from _sam2_case import load_case_model, load_npz, max_abs
from napari_segany.engine.video import VideoPredictor

pytestmark = pytest.mark.parity


@pytest.fixture(scope="module")
def run(synth_state_dict, tmp_path_factory, parity_dir):
    """The whole official call sequence, once: (npz, add result, propagation results, state)."""
    case = load_npz(parity_dir)
    model = load_case_model(synth_state_dict, tmp_path_factory.mktemp("sam2_video_weights"))
    predictor = VideoPredictor(model)
    state = predictor.init_state(case["video__frames_uint8"])
    added = predictor.add_new_points_or_box(
        state, frame_idx=0, obj_id=1, points=case["video__prompt_points"],
        labels=case["video__prompt_labels"])
    frames = list(predictor.propagate_in_video(state))
    return case, added, frames, state


def test_video_size_and_order(run):
    case, added, frames, state = run
    assert (state.video_height, state.video_width) == tuple(case["video__video_hw"])
    assert [f for f, _, _ in frames] == list(case["video__frame_idx"])
    assert all(ids == list(case["video__obj_ids"]) for _, ids, _ in frames)
    assert added[0] == 0 and added[1] == [1]


def test_add_points_logits(run):
    case, added, _, _ = run
    # README: "video__add_points_mask_logits: atol = 0.0002"
    assert max_abs(added[2], case["video__add_points_mask_logits"]) <= 2e-4


@pytest.mark.parametrize("frame", range(8))
def test_every_frame(run, frame):
    """README: "check frame 0 first" -- a failure names the first frame that drifts."""
    case, _, frames, state = run
    frame_idx, _, logits = frames[frame]
    track = state.bank.tracks[1]
    out = state.bank.load(1, frame_idx, track.cond.get(frame_idx) or track.non_cond[frame_idx])
    # README: "video__video_res_masks: atol = 0.0004", "video__pred_masks_lowres: atol =
    # 0.0004", "video__object_score_logits: atol = 0.0001", "video__obj_ptr: atol = 0.0001"
    assert max_abs(logits, case["video__video_res_masks"][frame]) <= 4e-4
    assert max_abs(out.pred_masks, case["video__pred_masks_lowres"][frame]) <= 4e-4
    assert max_abs(out.object_score_logits, case["video__object_score_logits"][frame]) <= 1e-4
    assert max_abs(out.obj_ptr, case["video__obj_ptr"][frame]) <= 1e-4

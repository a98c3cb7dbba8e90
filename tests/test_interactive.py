"""GUI-free interactive logic: grouping prompts, the session, commits, ids, the preview."""
from __future__ import annotations

import numpy as np
import pytest

from napari_segany.engine.errors import PromptError
from napari_segany.engine.interactive import (
    commit_mask, crop_to_bbox, group_prompts, InteractiveSession, MaxLabelTracker, ObjectPrompt,
    paint_preview, Predictor,
)
from napari_segany.engine.interactive.masks import mask_bbox, union_bbox

from _fakes import fake_model


@pytest.fixture
def predictor():
    p = Predictor(fake_model())
    p.set_image(np.zeros((64, 96), np.uint8))  # 64 rows, 96 columns
    return p


# --- grouping ---------------------------------------------------------------------------------
def test_points_without_boxes_make_one_object():
    objs = group_prompts([[10, 10], [20, 20], [30, 30]], [1, 0, 1])
    assert len(objs) == 1 and objs[0].key == ("points",)
    assert objs[0].labels.tolist() == [1, 0, 1]


def test_negative_points_alone_make_no_object():
    assert group_prompts([[10, 10]], [0]) == []
    assert group_prompts() == []


def test_each_box_is_an_object_with_the_points_inside_it():
    boxes = [[0, 0, 50, 50], [10, 10, 20, 20], [60, 0, 90, 30]]
    objs = group_prompts([[15, 15], [70, 5], [80, 50]], [1, 0, 1], boxes)
    keys = [o.key[0] for o in objs]
    assert keys == ["box", "box", "box", "points"]
    assert len(objs[0].labels) == 0  # the point at (15, 15) joins the smaller inner box
    assert objs[1].points_xy.tolist() == [[15, 15]]
    assert objs[2].labels.tolist() == [0]
    assert objs[3].points_xy.tolist() == [[80, 50]]


def test_box_corners_in_any_order():
    (obj,) = group_prompts(boxes=[[50, 40, 10, 5]])
    assert obj.box.tolist() == [10, 5, 50, 40]


def test_split_points_gives_one_object_per_positive_point():
    objs = group_prompts([[10, 10], [20, 20], [30, 30]], [1, 0, 1], split_points=True)
    assert [o.key for o in objs] == [("point", 10.0, 10.0), ("point", 30.0, 30.0)]
    for o in objs:
        assert o.labels.tolist() == [1, 0] and o.points_xy[1].tolist() == [20, 20]


def test_mismatched_labels_are_refused():
    with pytest.raises(PromptError):
        group_prompts([[1, 1]], [1, 0])


def test_extends_means_more_points_same_box():
    a = ObjectPrompt(("points",), np.array([[1.0, 2.0]]), np.array([1]))
    b = ObjectPrompt(("points",), np.array([[1.0, 2.0], [5, 5]]), np.array([1, 0]))
    assert b.extends(a) and not a.extends(b) and not a.extends(a)
    moved = ObjectPrompt(("points",), np.array([[1.5, 2.0], [5, 5]]), np.array([1, 0]))
    assert not moved.extends(a)


# --- masks helpers ----------------------------------------------------------------------------
def test_bbox_helpers():
    m = np.zeros((10, 12), bool)
    assert mask_bbox(m) is None
    m[2:5, 3:9] = True
    assert mask_bbox(m) == (2, 5, 3, 9)
    bbox, crop = crop_to_bbox(m)
    assert crop.shape == (3, 6) and crop.all()
    assert union_bbox((0, 2, 0, 2), None, (1, 5, 1, 3)) == (0, 5, 0, 3)
    assert union_bbox(None) is None


# --- session ----------------------------------------------------------------------------------
def test_single_click_gives_best_of_three_around_the_click(predictor):
    session = InteractiveSession(predictor)
    session.set_prompts(group_prompts([[60, 20]], [1]))
    (mask,) = session.masks
    assert mask.n_candidates == 3 and mask.candidate == 1  # the fake scores 0.5, 0.9, 0.7
    full = mask.full((64, 96))
    assert full[20, 60] and not full[20, 10]
    assert predictor.model.decode_calls[-1]["multimask"] is True


def test_cycling_candidates_changes_the_shown_mask_only(predictor):
    session = InteractiveSession(predictor)
    session.set_prompts(group_prompts([[48, 32]], [1]))
    areas = [session.masks[0].area]
    calls = len(predictor.model.decode_calls)
    for _ in range(3):
        areas.append(session.cycle_candidate().area)
    assert [session.masks[0].candidate] == [1]
    assert areas[0] == areas[3] and areas[1] > areas[0] > areas[2]  # 1 -> 2 -> 0 -> 1
    assert len(predictor.model.decode_calls) == calls  # no decode, only an upsample


def test_unchanged_objects_are_not_decoded_again(predictor):
    session = InteractiveSession(predictor)
    prompts = group_prompts([[10, 10]], [1], boxes=[[40, 10, 80, 50]])
    assert len(session.set_prompts(prompts)) == 2
    n = len(predictor.model.decode_calls)
    assert session.set_prompts(group_prompts([[10, 10]], [1], boxes=[[40, 10, 80, 50]])) == []
    assert len(predictor.model.decode_calls) == n


def test_added_points_feed_back_the_shown_logits(predictor):
    session = InteractiveSession(predictor)
    session.set_prompts(group_prompts([[40, 30]], [1]))
    session.set_prompts(group_prompts([[40, 30], [5, 5]], [1, 0]))
    call = predictor.model.decode_calls[-1]
    assert call["mask_input"] is not None and tuple(call["mask_input"].shape) == (1, 1, 16, 16)
    assert call["multimask"] is False  # two prompts: no ambiguity left
    # moving the point is a new prompt: no feedback
    session.set_prompts(group_prompts([[41, 30], [5, 5]], [1, 0]))
    assert predictor.model.decode_calls[-1]["mask_input"] is None


def test_removed_objects_disappear_and_active_follows(predictor):
    session = InteractiveSession(predictor)
    session.set_prompts(group_prompts([[10, 10], [50, 30]], [1, 1], split_points=True))
    assert len(session.masks) == 2 and session.active_key == ("point", 50.0, 30.0)
    session.set_prompts(group_prompts([[10, 10]], [1], split_points=True))
    assert len(session.masks) == 1 and session.active_key == ("point", 10.0, 10.0)
    session.clear()
    assert session.masks == [] and session.cycle_candidate() is None


def test_box_object_decodes_inside_the_box(predictor):
    session = InteractiveSession(predictor)
    session.set_prompts(group_prompts(boxes=[[20, 8, 60, 40]]))
    bbox = session.masks[0].bbox
    assert bbox[0] >= 4 and bbox[1] <= 44 and bbox[2] >= 16 and bbox[3] <= 64


# --- commit -----------------------------------------------------------------------------------
def test_commit_preserves_existing_objects():
    labels = np.zeros((20, 20), np.int32)
    labels[5:10, 5:10] = 7
    mask = np.zeros((20, 20), bool)
    mask[8:12, 8:12] = True
    rows, cols = commit_mask(labels, mask, 8, preserve=True, write=True)
    assert len(rows) == 16 - 4
    assert (labels[8:10, 8:10] == 7).all() and (labels[10:12, 10:12] == 8).all()
    rows, cols = commit_mask(labels, mask, 9, preserve=False, write=True)
    assert len(rows) == 16 and (labels[8:12, 8:12] == 9).all()


def test_commit_of_a_crop_at_an_offset():
    labels = np.zeros((30, 40), np.uint16)
    crop = np.ones((3, 4), bool)
    rows, cols = commit_mask(labels, crop, 5, offset=(10, 20))
    assert rows.min() == 10 and rows.max() == 12 and cols.min() == 20 and cols.max() == 23
    assert labels.max() == 0  # not written without write=True
    empty_rows, _ = commit_mask(labels, np.zeros((3, 3), bool), 5)
    assert empty_rows.size == 0
    with pytest.raises(ValueError):
        commit_mask(labels, crop, 5, offset=(28, 0))


def test_max_label_tracker_scans_once():
    data = np.zeros((10, 10), np.int32)
    data[0, 0] = 4
    tracker = MaxLabelTracker()
    assert tracker.next_id(data) == 5
    data[1, 1] = 100  # not observed: the tracker trusts what it saw
    assert tracker.next_id(data) == 5
    tracker.observe(5)
    assert tracker.next_id(data) == 6
    tracker.invalidate()
    assert tracker.next_id(data) == 101


def test_paint_preview_touches_only_the_bounding_boxes(predictor):
    preview = np.zeros((64, 96), np.uint8)
    preview[0, 0] = 2  # another object's pixel stays
    session = InteractiveSession(predictor)
    session.set_prompts(group_prompts([[30, 30]], [1]))
    first = session.masks[0]
    assert paint_preview(preview, None, first, 1) == first.bbox
    assert (preview == 1).sum() == first.area
    session.set_prompts(group_prompts([[70, 40]], [1]))
    second = session.masks[0]
    changed = paint_preview(preview, first, second, 1)
    assert changed == union_bbox(first.bbox, second.bbox)
    assert (preview == 1).sum() == second.area and preview[0, 0] == 2

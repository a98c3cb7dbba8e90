"""FastSAM in the interactive session: prompts select among its masks (FastSAMPrompt rules).

Uses the real-format synthesized FastSAM-s file of ../shared/parity, made to give visible
masks (tests/_everything.visible_fastsam); the widget test drives it as a user would.
"""
from __future__ import annotations

import numpy as np
import pytest

from _everything import FASTSAM_FILE, visible_fastsam
from napari_segany.engine.errors import PromptError
from napari_segany.engine.detection.fastsam import fastsam_point_prompt, select_by_box
from napari_segany.engine.interactive import FastSAMPredictor, InteractiveSession, ObjectPrompt

pytestmark = pytest.mark.skipif(not FASTSAM_FILE.is_file(),
                                reason=f"{FASTSAM_FILE} absent (a user's clone has no ../shared)")


@pytest.fixture(scope="module")
def fastsam():
    from napari_segany import load_model

    return visible_fastsam(load_model("fastsam_s", checkpoint=FASTSAM_FILE, device="cpu"))


@pytest.fixture(scope="module")
def predictor(fastsam):
    from skimage import data

    rgb = np.repeat(data.cell()[:320, :400, None], 3, axis=-1)
    p = FastSAMPredictor(fastsam)
    p.set_embedding(p.encode(rgb))
    assert len(p.result) > 0 and p.result.areas.max() > 0
    return p


def _pixel_of(result, i) -> tuple[float, float]:
    """x, y of a pixel inside mask i."""
    ys, xs = np.nonzero(result.mask(i))
    return float(xs[len(xs) // 2]), float(ys[len(ys) // 2])


def test_points_follow_the_official_point_rule(predictor):
    result = predictor.result
    i = int(np.argmax(result.areas))
    x, y = _pixel_of(result, i)
    session = InteractiveSession(predictor)
    session.set_prompts([ObjectPrompt(("a",), np.array([[x, y]]), np.array([1]))])
    mask = session.masks[0]
    expected = fastsam_point_prompt(result, [[x, y]], [1])
    np.testing.assert_array_equal(mask.full(result.image_shape), expected)
    assert mask.n_candidates == 1 and expected.any()


def test_a_box_picks_the_best_overlapping_mask_and_points_edit_it(predictor):
    result = predictor.result
    box = result.boxes[0]
    picked = predictor.select(None, None, box)
    np.testing.assert_array_equal(picked, result.mask(select_by_box(result, box)))
    x, y = _pixel_of(result, select_by_box(result, box))
    edited = predictor.select(np.array([[x, y]]), np.array([0]), box)
    assert edited.sum() < picked.sum()  # a negative point inside removes the mask under it


def test_no_prompt_and_empty_box_are_clear_errors(predictor):
    with pytest.raises(PromptError, match="point or a box"):
        predictor.select(None, None, None)
    with pytest.raises(PromptError, match="empty"):
        predictor.select(None, None, [5, 5, 5, 5])


@pytest.mark.gui
def test_fastsam_in_the_widget_click_and_commit(make_napari_viewer, monkeypatch, tmp_path):
    from skimage import data

    monkeypatch.setenv("NAPARI_SEGANY_CACHE", str(tmp_path))
    viewer = make_napari_viewer()
    viewer.add_image(data.cell()[:320, :400])
    _, widget = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Anything")
    assert widget.model_panel.model_combo.findText("fastsam_s") >= 0
    widget.set_model("fastsam_s", checkpoint=str(FASTSAM_FILE), device="cpu")
    visible_fastsam(widget.predictor.model)
    assert not widget.refine_check.isEnabled()
    widget.segment(points=[[5, 5]])  # the first click runs FastSAM on the slice (in a worker)
    widget.discard()
    result = widget.predictor.result
    x, y = _pixel_of(result, int(np.argmax(result.areas)))
    masks = widget.segment(points=[[y, x]])  # napari (row, col)
    assert masks and masks[0].area > 0
    ids = widget.commit()
    labels = viewer.layers["SegAny labels"].data
    assert ids and (labels == ids[0]).sum() == masks[0].area

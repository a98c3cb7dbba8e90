"""One session per image, status lines that describe the present, the propagation panel that
follows the image, and stop reasons in words (issue 14, items 2, 4 and 7), driven as a user
drives the Segment Anything dock: layers added, points placed on the prompt layers, images
picked in the Image box, buttons pressed."""
from __future__ import annotations

import time

import numpy as np
import pytest

from napari_segany.engine.embeddings.encoding import encoder_steps
from napari_segany.gui.interactive.prompt_layers import POINTS_NAME
from napari_segany.gui.shared.labels_io import LABELS_NAME, PREVIEW_NAME

pytestmark = pytest.mark.gui


def load(widget, checkpoint):
    widget.set_model("fake_sam", checkpoint=str(checkpoint), device="cpu")
    assert widget.predictor is not None


def pick(widget, name):
    """The user picks ``name`` in the Image box."""
    widget.image_combo.setCurrentText(name)
    widget.image_combo.activated.emit(widget.image_combo.currentIndex())


def layers_above(viewer, name, n=4):
    names = [layer.name for layer in viewer.layers]
    i = names.index(name)
    return names[i + 1:i + 1 + n]


def noise(seed, shape=(48, 64)):
    return np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)


# ------------------------------------------------------------------ item 2: one session per image
def test_a_second_image_of_the_same_shape_has_its_own_session(open_widget, fake_checkpoint):
    viewer, widget = open_widget(noise(0), name="first")
    load(widget, fake_checkpoint)
    viewer.layers[POINTS_NAME].add([20, 30])  # a click on the first image
    widget.wait()
    (first_mask,) = widget.masks
    first_preview = viewer.layers[PREVIEW_NAME].data.copy()
    assert first_preview.any()

    viewer.add_image(noise(1), name="second")
    pick(widget, "second")
    own = ["SegAny preview (second)", "SegAny boxes (second)", "SegAny points (second)"]
    assert layers_above(viewer, "second") == [LABELS_NAME, *own]  # drawn over it, clicks land
    assert viewer.layers.selection.active.name == "SegAny points (second)"
    decodes = len(widget.predictor.model.decode_calls)
    widget.wait()
    assert widget.masks == [] and not viewer.layers["SegAny preview (second)"].data.any()
    assert len(widget.predictor.model.decode_calls) == decodes  # the first image's click: not here
    assert len(viewer.layers[POINTS_NAME].data) == 1  # it stays with its image
    viewer.layers["SegAny points (second)"].add([10, 50])
    widget.wait()
    (second_mask,) = widget.masks
    assert second_mask.bbox != first_mask.bbox

    pick(widget, "first")
    assert layers_above(viewer, "first") == [LABELS_NAME, PREVIEW_NAME, "SegAny boxes",
                                             POINTS_NAME]
    widget.wait()
    assert [m.bbox for m in widget.masks] == [first_mask.bbox]  # its objects, as they were
    assert np.array_equal(viewer.layers[PREVIEW_NAME].data, first_preview)
    assert widget.commit() == [1] and viewer.layers[LABELS_NAME].data[20, 30] == 1


# ------------------------------------------------------------------ item 4: status lines
def test_the_status_line_describes_the_present(open_widget, fake_checkpoint, qtbot, monkeypatch):
    viewer, widget = open_widget(np.stack([noise(s) for s in range(3)]), name="first")
    load(widget, fake_checkpoint)
    widget.segment(points=[[20, 30]])
    widget.commit()
    assert widget.status_label.text().startswith("Committed")
    viewer.add_image(noise(5), name="second")
    pick(widget, "second")  # another image: its own line, not the first image's
    assert "'second'" in widget.status_label.text() and "Committed" not in widget.status_label.text()

    pick(widget, "first")  # after a cancel
    for block in encoder_steps(widget.predictor.model):
        block.register_forward_pre_hook(lambda *_: time.sleep(0.2))
    viewer.dims.set_current_step(0, 2)
    viewer.layers[POINTS_NAME].add([2, 20, 30])
    qtbot.waitUntil(lambda: widget.embeddings.job is not None, timeout=3000)
    assert widget.status_label.text().startswith("Computing the image embedding")
    widget.cancel_button.click()
    assert widget.status_label.text().startswith("Embedding cancelled")

    def broken(*args):  # after an error
        raise RuntimeError("simulated decoder failure")

    viewer.dims.set_current_step(0, 0)
    widget.wait()
    monkeypatch.setattr(widget.predictor, "decode_lowres", broken)
    viewer.layers[POINTS_NAME].add([0, 10, 10])
    widget.wait()
    assert widget.status_label.text().startswith("Could not decode the prompts")


def test_the_propagation_panel_follows_the_image(open_widget, fake_checkpoint):
    viewer, widget = open_widget(np.stack([noise(s) for s in range(6)]), name="stack")
    panel = widget.propagation
    load(widget, fake_checkpoint)
    assert "slices 0–5" in panel.range_label.text() and not panel.propagate_button.isEnabled()
    assert panel.ready_label.text().startswith("Commit an object on this slice")
    viewer.add_image(noise(9), name="flat")
    pick(widget, "flat")
    assert "no z or t axis" in panel.range_label.text() and not panel.propagate_button.isEnabled()
    assert "propagation needs a z-stack" in panel.ready_label.text()
    pick(widget, "stack")
    viewer.dims.set_current_step(0, 3)
    widget.segment(points=[[20, 30]])
    widget.commit()
    assert panel.propagate_button.isEnabled() and "slices 0–5" in panel.range_label.text()
    assert panel.ready_label.text() == "Propagates object 1 from z = 3 along z (slices 0–5)."
    viewer.dims.set_current_step(0, 0)  # a slice without the object: nothing to propagate
    assert not panel.propagate_button.isEnabled() and "Commit an object" in panel.ready_label.text()


def test_on_a_4d_layer_the_panel_says_what_it_can_do(open_widget, fake_checkpoint):
    data = np.random.default_rng(3).integers(0, 255, (4, 5, 48, 64), dtype=np.uint8)
    viewer, widget = open_widget(data, name="movie", axis_labels=("time", "depth", "y", "x"))
    panel = widget.propagation
    assert [panel.axis_combo.itemText(i) for i in range(2)] == ["time", "depth"]
    assert not panel.propagate_button.isEnabled() and "Load a model" in panel.ready_label.text()
    load(widget, fake_checkpoint)
    assert not panel.propagate_button.isEnabled()
    viewer.dims.set_current_step(0, 1)
    viewer.dims.set_current_step(1, 2)
    widget.segment(points=[[20, 30]])
    widget.commit()
    assert panel.propagate_button.isEnabled()
    assert panel.ready_label.text() == ("Propagates object 1 from depth = 2 along depth "
                                        "(slices 0–4); time stays at 1.")
    panel.axis_combo.setCurrentIndex(0)
    assert panel.ready_label.text() == ("Propagates object 1 from time = 1 along time "
                                        "(slices 0–3); depth stays at 2.")


# ------------------------------------------------------------------ item 7: stop reasons
def test_propagation_stop_reasons_are_said_in_words(open_widget, fake_checkpoint):
    viewer, widget = open_widget(np.stack([noise(s) for s in range(6)]), name="stack")
    load(widget, fake_checkpoint)
    viewer.dims.set_current_step(0, 2)
    widget.segment(points=[[20, 30]])
    widget.commit()
    panel = widget.propagation
    panel.score_spin.setValue(0.95)  # the stand-in model scores 0.90 on every slice
    widget.propagate(wait=True)
    lines = panel.status_label.text().splitlines()
    assert lines == [
        "Object 1: 0 more slice(s).",
        "Forward: stopped at z = 3: the model's quality score fell to 0.90 (< 0.95); lower "
        "'Min score' to go on.",
        "Backward: stopped at z = 1: the model's quality score fell to 0.90 (< 0.95); lower "
        "'Min score' to go on."]
    panel.score_spin.setValue(0.5)
    panel.to_spin.setValue(4.0)
    widget.propagate(wait=True)
    assert panel.status_label.text().splitlines()[1:] == [
        "Forward: reached the end of the range (z = 4); widen 'Range' to go on.",
        "Backward: reached the first slice (z = 0)."]


def test_every_stop_rule_names_the_setting_that_lets_it_go_on():
    from napari_segany.engine.propagation import StopRules
    from napari_segany.engine.propagation.result import PropagationResult, SliceReport
    from napari_segany.gui.interactive.propagation_words import stop_lines

    def report(index, direction, status, area=100, ratio=1.0):
        return SliceReport(index, direction, status, 0.9, area, ratio, None, np.zeros((0, 0), bool))

    result = PropagationResult(seed=5, shape=(8, 8), length=24)
    result.reports += [report(6, "forward", "ok"), report(7, "forward", "area_jump", 350, 3.5),
                       report(4, "backward", "empty", 0)]
    result.stops = {"forward": "area_jump", "backward": "empty"}
    assert stop_lines(result, StopRules(max_area_ratio=2.0), 1.5, "t") == [
        "Forward: stopped at t = 7: the object's area grew 3.5× in one slice (more than the "
        "2.8× allowed); raise 'Max area change' to go on.",
        "Backward: stopped at t = 4: the object vanished (an empty mask); tick 'Walk past "
        "empty slices' to walk past it."]

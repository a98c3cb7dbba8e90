"""Propagation from the Segment Anything widget, driven as a user drives it: commit an object
on a slice, Propagate, the object appears on the other slices with its id, Ctrl+Z undoes
the propagation in one step, Cancel writes nothing.  Tiny SAM with synthesized weights and
the geometric fake model (conftest)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_segany.gui.shared.labels_io import LABELS_NAME

pytestmark = pytest.mark.gui


def panel_of(widget):
    """The widget's propagation panel."""
    return widget.propagation


def load(widget, checkpoint, name="tiny_sam"):
    widget.set_model(name, checkpoint=str(checkpoint), device="cpu")
    assert widget.predictor is not None, "the model did not load"


def commit_at(widget, rc):
    widget.segment(points=[rc])
    ids = widget.commit()
    assert ids, "nothing was committed"
    return ids[0]


def lenient(panel):
    """Random weights score low and jump in area: let the walk go on."""
    panel.score_spin.setValue(0.0)
    panel.area_spin.setValue(100.0)
    panel.past_empty_check.setChecked(True)


@pytest.fixture
def panel_notes(notes):
    """Every notification of the widget and its panels, as (level, message)."""
    return notes


def test_propagate_through_the_zstack_in_world_range_and_undo_in_one_step(
        open_widget, tiny_checkpoint, qtbot, panel_notes):
    viewer, widget = open_widget(sample="nuclei_zstack")  # (24, 256, 256), z scale 2
    load(widget, tiny_checkpoint)
    viewer.dims.set_current_step(0, 5)
    object_id = commit_at(widget, (128, 128))
    labels = viewer.layers[LABELS_NAME]
    panel = panel_of(widget)
    lenient(panel)
    panel.sync()
    assert (panel.from_spin.value(), panel.to_spin.value()) == (0.0, 46.0)  # world: z * 2
    panel.from_spin.setValue(6.0)
    panel.to_spin.setValue(14.0)
    assert "slices 3–7" in panel.range_label.text()
    qtbot.mouseClick(panel.propagate_button, Qt.MouseButton.LeftButton)
    assert panel.busy
    panel.wait()
    result = panel.last_result
    assert result.stops == {"forward": "range", "backward": "range"}
    written = [z for z in range(24) if (labels.data[z] == object_id).any()]
    assert set(written) == set(result.indices) and set(written) <= set(range(3, 8))
    assert len(written) > 1 and 5 in written
    assert labels.data.max() == object_id  # the same id, no new object
    assert panel_notes[-1][0] == "info" and "Propagated object 1" in panel_notes[-1][1]
    assert len(widget.cache) >= 4  # the neighbours' embeddings are in the widget's cache
    labels.undo()  # Ctrl+Z: the whole propagation at once, the commit stays
    assert [z for z in range(24) if labels.data[z].any()] == [5]
    labels.undo()
    assert labels.data.max() == 0


def test_cancel_writes_nothing_and_stops_the_threads(open_widget, tiny_checkpoint, qtbot,
                                                    panel_notes):
    from napari_segany.engine.embeddings.encoding import encoder_steps

    viewer, widget = open_widget(sample="nuclei_zstack")
    load(widget, tiny_checkpoint)
    viewer.dims.set_current_step(0, 5)
    commit_at(widget, (128, 128))
    labels = viewer.layers[LABELS_NAME]
    before = labels.data.copy()
    panel = panel_of(widget)
    lenient(panel)
    for block in encoder_steps(widget.predictor.model):  # slow encoder blocks (GIL released)
        block.register_forward_pre_hook(lambda *_: time.sleep(0.3))
    panel.propagate()
    qtbot.waitUntil(lambda: panel.cancel_button.isVisibleTo(panel), timeout=2000)
    time.sleep(0.2)
    qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    panel.wait(timeout=10)
    assert np.array_equal(labels.data, before)
    assert ("info", "Propagation cancelled; nothing was written.") in panel_notes
    assert not [t for t in threading.enumerate() if t.name == "segany-prefetch"]
    assert panel.propagate_button.isEnabled()


def test_4d_axis_choice_preserves_other_objects(open_widget, fake_checkpoint, panel_notes):
    rng = np.random.default_rng(3)
    viewer, widget = open_widget(rng.integers(0, 255, (4, 5, 48, 64), dtype=np.uint8), name="tzyx")
    labels_layer = viewer.add_labels(np.zeros((4, 5, 48, 64), np.uint16), name="cells")
    widget.set_labels(labels_layer)
    load(widget, fake_checkpoint, name="fake_sam")
    viewer.dims.set_current_step(0, 1)
    viewer.dims.set_current_step(1, 2)
    labels_layer.data[3, 2, 20:30, 25:35] = 9  # another object, at t = 3
    object_id = commit_at(widget, (20, 30))
    assert object_id == 10
    panel = panel_of(widget)
    panel.sync()
    assert [panel.axis_combo.itemText(i) for i in range(2)] == ["t", "z"]  # unnamed: T, Z, Y, X
    assert panel.axis_combo.currentIndex() == 1  # z of T, Z, Y, X by default
    panel.axis_combo.setCurrentIndex(0)  # walk through time at z = 2
    panel.score_spin.setValue(0.0)
    panel.propagate(wait=True)
    data = labels_layer.data
    assert panel.last_result.indices == [0, 1, 2, 3]
    assert all((data[t, 2] == object_id).any() for t in range(4))
    assert not (np.delete(data, 2, axis=1) == object_id).any()  # only z = 2
    assert (data[3, 2, 20:30, 25:35] == 9).all()  # preserved
    panel.overwrite_check.setChecked(True)
    panel.propagate(wait=True)
    assert (data[3, 2, 20:30, 25:35] == object_id).any()  # asked to overwrite
    viewer.dims.set_current_step(1, 4)
    assert panel.propagate() is None  # no object on z = 4
    assert panel_notes[-1][0] == "error" and "No committed object" in panel_notes[-1][1]
    panel.object_spin.setValue(object_id)
    assert panel.propagate() is None
    assert panel_notes[-1][0] == "error" and "not on the shown slice" in panel_notes[-1][1]


def test_shift_s_propagates_the_last_committed_object(open_widget, fake_checkpoint):
    rng = np.random.default_rng(4)
    viewer, widget = open_widget(rng.integers(0, 255, (6, 48, 64), dtype=np.uint8))
    load(widget, fake_checkpoint, name="fake_sam")
    viewer.dims.set_current_step(0, 2)
    commit_at(widget, (10, 10))
    second = commit_at(widget, (30, 40))
    panel = panel_of(widget)
    panel.score_spin.setValue(0.0)
    for binding, func in viewer.keymap.items():
        if str(binding) == "Shift+S":
            func(viewer)
    assert panel.busy
    panel.wait()
    data = viewer.layers[LABELS_NAME].data
    assert [z for z in range(6) if (data[z] == second).any()] == list(range(6))
    assert [z for z in range(6) if (data[z] == 1).any()] == [2]


def test_scale_units_and_world_range_conversions():
    from napari.layers import Image

    from napari_segany.gui.shared.image_slice import ImageSource
    from napari_segany.gui.interactive.propagation_axes import index_of as _index
    from napari_segany.gui.interactive.propagation_axes import steps as _steps
    from napari_segany.gui.interactive.propagation_axes import world as _world

    movie = ImageSource(Image(np.zeros((4, 5, 8, 8)), scale=(5, 2, 0.5, 0.5), translate=(0, 10, 0, 0),
                              units=("s", "um", "um", "um"), axis_labels=("t", "z", "y", "x")))
    assert _steps(movie, 0) == 1.0  # time: one frame is one step of the area rule
    assert _steps(movie, 1) == 4.0  # z: 2 um slices of 0.5 um pixels
    assert _world(movie, 1, 3) == 16.0 and _index(movie, 1, 16.9) == 3 and _index(movie, 1, 99) == 4
    stack = ImageSource(Image(np.zeros((6, 8, 8)), scale=(3, 1, 1)))  # default labels, pixels
    assert _steps(stack, 0) == 3.0

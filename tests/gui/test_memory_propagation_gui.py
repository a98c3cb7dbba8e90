"""SAM 2 memory propagation from the Segment Anything dock, driven as a user drives it: label
objects on one slice, choose "SAM 2 memory", Propagate; every slice gets the objects with
their ids, Ctrl+Z undoes the run in one step, Cancel writes nothing, clicks on a later slice
correct an object and Propagate again changes that slice.  A tiny SAM 2 with synthesized
weights (tests/_sam2_tiny.py) loaded from a file, on the bundled time series and z-stack;
its masks are noise-like, so the checks are about ids, slices and undo, not shapes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from qtpy.QtCore import Qt

from _sam2_tiny import TINY_SAM2
from napari_segany.models import registry

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def sam2_checkpoint(tmp_path_factory):
    """The tiny SAM 2's seed-0 weights in the official file layout ({'model': state dict})."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny_sam2.pt"
    torch.save({"model": TINY_SAM2.build().state_dict()}, path)
    return path


@pytest.fixture(autouse=True)
def tiny_sam2_registered(monkeypatch):
    monkeypatch.setitem(registry.REGISTRY, TINY_SAM2.name, TINY_SAM2)


def open_with_labels(open_widget, sample, checkpoint, model="tiny_sam2"):
    """The dock on a bundled sample, the model loaded, a Labels layer of the image's shape
    chosen as the target; returns (viewer, widget, labels, panel)."""
    viewer, widget = open_widget(sample=sample)
    image = viewer.layers[0]
    labels = viewer.add_labels(np.zeros(image.data.shape, np.uint32), name="cells",
                               scale=image.scale)
    widget.set_image(image)
    widget.set_labels(labels)
    widget.set_model(model, checkpoint=str(checkpoint), device="cpu")
    assert widget.predictor is not None, "the model did not load"
    return viewer, widget, labels, widget.propagation


def paint(labels, where, rows, cols, value):
    """What a user's brush does: an undoable write of ``value`` into a box of one slice."""
    rr, cc = np.mgrid[rows, cols]
    coords = tuple(np.full(rr.size, i) for i in where) + (rr.ravel(), cc.ravel())
    labels.data_setitem(coords, np.full(rr.size, value, labels.data.dtype))


def click_propagate(qtbot, panel):
    assert panel.propagate_button.isEnabled(), panel.ready_label.text()
    qtbot.mouseClick(panel.propagate_button, Qt.MouseButton.LeftButton)
    assert panel.busy
    panel.wait()


def test_time_series_every_frame_gets_the_ids_undo_and_a_correction(
        open_widget, sam2_checkpoint, qtbot, notes):
    viewer, widget, labels, panel = open_with_labels(open_widget, "cell_timeseries",
                                                     sam2_checkpoint)
    assert labels.data.shape == (12, 320, 320)
    viewer.dims.set_current_step(0, 0)
    paint(labels, (0,), slice(100, 180), slice(120, 200), 4)
    panel.set_method("memory")
    assert not panel.score_spin.isEnabled()  # the slice-by-slice stop rules do not apply
    text = panel.ready_label.text()
    assert "object 4 of this slice (t = 0)" in text and "SAM 2's memory" in text
    seeded = labels.data.copy()

    click_propagate(qtbot, panel)
    result = panel.last_result
    assert result.obj_ids == [4] and result.frames == list(range(12))
    for t in range(12):  # every frame got the object, with its id
        assert set(np.unique(labels.data[t]).tolist()) == {0, 4}, t
    np.testing.assert_array_equal(labels.data[0], seeded[0])  # the seed slice is kept as is
    assert notes[-1][0] == "info" and "wrote object 4 on 12 slice(s)" in notes[-1][1]
    assert "on 12 slice(s) (t = 0–11)" in panel.status_label.text()
    propagated = labels.data.copy()
    labels.undo()  # Ctrl+Z: the whole propagation at once, the painting stays
    np.testing.assert_array_equal(labels.data, seeded)
    labels.redo()
    np.testing.assert_array_equal(labels.data, propagated)

    # a correction: negative clicks on frame 8 for the selected label, then Propagate again
    viewer.dims.set_current_step(0, 8)
    labels.selected_label = 4
    inside = np.argwhere(propagated[8] == 4)
    widget.segment(points=[inside[len(inside) // 2], inside[0]], labels=[0, 0])
    assert widget.prompts.count_on(widget.source, (8,)) == 2
    assert panel.ready_label.text().startswith("Corrects object 4 on t = 8 with 2 click(s)")
    click_propagate(qtbot, panel)
    assert panel.last_result.session is widget.image_session.memory.session  # kept, reused
    assert (labels.data[8] != propagated[8]).any(), "the correction did not change frame 8"
    assert "object 4 corrected at t = 8" in panel.status_label.text()
    assert widget.prompts.count_on(widget.source, (8,)) == 0  # the clicks went to the memory
    assert set(np.unique(labels.data).tolist()) <= {0, 4}
    labels.undo()
    np.testing.assert_array_equal(labels.data, propagated)


def test_cancel_writes_nothing_and_frees_the_new_memory(open_widget, sam2_checkpoint, notes):
    viewer, widget, labels, panel = open_with_labels(open_widget, "cell_timeseries",
                                                     sam2_checkpoint)
    viewer.dims.set_current_step(0, 3)
    paint(labels, (3,), slice(60, 120), slice(60, 140), 2)
    paint(labels, (3,), slice(200, 260), slice(180, 260), 5)
    before = labels.data.copy()
    worker = widget.propagate(method="memory")
    assert worker is not None and panel.busy
    assert "objects 2, 5" in panel.status_label.text()
    panel.cancel()
    panel.wait()
    np.testing.assert_array_equal(labels.data, before)
    assert panel.status_label.text() == "Cancelled; nothing was written."
    assert notes[-1] == ("info", "Propagation cancelled; nothing was written.")
    assert widget.image_session.memory is None  # nothing kept from a cancelled run


def test_z_stack_range_and_the_model_it_needs(open_widget, tiny_checkpoint, sam2_checkpoint,
                                              qtbot):
    viewer, widget, labels, panel = open_with_labels(open_widget, "nuclei_zstack",
                                                     tiny_checkpoint, model="tiny_sam")
    viewer.dims.set_current_step(0, 5)
    paint(labels, (5,), slice(100, 150), slice(100, 160), 3)
    paint(labels, (5,), slice(20, 60), slice(180, 230), 8)
    panel.set_method("memory")
    assert not panel.propagate_button.isEnabled()  # a SAM model has no memory
    assert "needs a SAM 2 model: load sam2.1_hiera_t" in panel.ready_label.text()
    widget.set_model("tiny_sam2", checkpoint=str(sam2_checkpoint), device="cpu")
    panel.sync()
    panel.from_spin.setValue(6.0)  # world units: z scale 2 -> slices 3..7
    panel.to_spin.setValue(14.0)
    assert "objects 3, 8 of this slice (z = 5)" in panel.ready_label.text()
    before = labels.data.copy()
    click_propagate(qtbot, panel)
    result = panel.last_result
    assert result.frames == [3, 4, 5, 6, 7]
    assert result.stops == {"forward": "range", "backward": "range"}
    written = [z for z in range(24) if (labels.data[z] != before[z]).any()]
    assert set(written) <= {3, 4, 6, 7} and written, written
    assert set(np.unique(labels.data).tolist()) <= {0, 3, 8}
    labels.undo()
    np.testing.assert_array_equal(labels.data, before)


@pytest.mark.parametrize("kind", ["rgb", "channels first"])
def test_colour_and_channel_stacks_are_read_as_the_dock_sees_them(
        kind, open_widget, sam2_checkpoint, qtbot):
    rng = np.random.default_rng(1)
    if kind == "rgb":  # (T, Y, X, 3)
        image = rng.integers(0, 255, (5, 48, 64, 3), dtype=np.uint8)
        viewer, widget = open_widget(image, name="movie", rgb=True, axis_labels=("t", "y", "x"))
    else:  # (C, T, Y, X), two channels -> R, G
        image = rng.integers(0, 4000, (2, 5, 48, 64), dtype=np.uint16)
        viewer, widget = open_widget(image, name="movie", axis_labels=("c", "t", "y", "x"))
        widget.set_image("movie", channel_first=True, channels=(0, 1))
    labels = viewer.add_labels(np.zeros((5, 48, 64), np.uint32), name="cells")
    widget.set_labels(labels)
    widget.set_model("tiny_sam2", checkpoint=str(sam2_checkpoint), device="cpu")
    viewer.dims.set_current_step(1 if kind != "rgb" else 0, 2)
    paint(labels, (2,), slice(10, 30), slice(20, 40), 6)
    panel = widget.propagation
    panel.set_method("memory")
    assert "(t = 2)" in panel.ready_label.text(), panel.ready_label.text()
    click_propagate(qtbot, panel)
    assert panel.last_result.frames == [0, 1, 2, 3, 4]
    assert set(np.unique(labels.data).tolist()) <= {0, 6}

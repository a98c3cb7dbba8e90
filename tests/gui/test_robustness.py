"""Bad input and untimely actions in the Segment Anything widget, its Propagate and store
panels, done as a user does them: each gets a clear notification and loses nothing
(committed labels intact, no traceback, no thread left running, the widget still works).

The geometric fake model (tests/_fakes.py) keeps this file fast; a worker is kept "running"
by making its encoder blocks or its decoder sleep (the GIL is released, as in torch).
"""
from __future__ import annotations

import dataclasses
import sys
import threading
import time
import types

import numpy as np
import pytest
import torch
from qtpy.QtCore import QThreadPool

from napari_segany.engine.embeddings.encoding import encoder_steps
from napari_segany.gui.shared.labels_io import LABELS_NAME, PREVIEW_NAME
from napari_segany.gui.interactive.prompt_layers import BOXES_NAME, POINTS_NAME

pytestmark = pytest.mark.gui

OWN_THREADS = ("segany-encode", "segany-prefetch")


# ------------------------------------------------------------------------------ helpers
@pytest.fixture
def said(notes):
    """Every notification of the widget and its panels, as (level, message)."""
    return notes


@pytest.fixture
def fake_widget(open_widget, fake_checkpoint):
    """``fake_widget(image, **layer_kwargs)`` -> (viewer, widget) with the fake model loaded."""

    def make(image, **layer_kwargs):
        viewer, widget = open_widget(image, **layer_kwargs)
        load(widget, fake_checkpoint)
        return viewer, widget

    return make


def load(widget, checkpoint, name="fake_sam"):
    widget.set_model(name, checkpoint=str(checkpoint), device="cpu")
    assert widget.predictor is not None and widget.predictor.spec.name == name


def press(provider, key):
    for binding, func in provider.keymap.items():
        if str(binding) == key:
            return func(provider)
    raise KeyError(key)


def slow_encoder(widget, seconds):
    for block in encoder_steps(widget.predictor.model):
        block.register_forward_pre_hook(lambda *_: time.sleep(seconds))


def stack(n=6, shape=(48, 64), seed=4):
    return np.random.default_rng(seed).integers(0, 255, (n, *shape), dtype=np.uint8)


def errors(notes):
    return [msg for level, msg in notes if level == "error"]


def no_threads_left(qtbot):
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=10_000)
    qtbot.waitUntil(lambda: not [t for t in threading.enumerate() if t.name in OWN_THREADS],
                    timeout=10_000)


# ------------------------------------------------------------------ layers deleted mid-run
def test_image_deleted_while_its_embedding_runs_then_another_image_works(
        fake_widget, qtbot, said):
    viewer, widget = fake_widget(stack(), name="first")
    slow_encoder(widget, 0.2)
    viewer.dims.set_current_step(0, 2)
    widget.segment(points=[[20, 30]])
    widget.commit()
    labels = viewer.layers[LABELS_NAME].data.copy()
    viewer.layers[POINTS_NAME].add([3, 20, 30])  # a new slice: its embedding starts
    viewer.dims.set_current_step(0, 3)
    qtbot.waitUntil(lambda: widget.embeddings.job is not None, timeout=3000)
    job = widget.embeddings.job
    viewer.layers.remove("first")
    assert widget.source is None and widget.embeddings.job is None and job.cancel.is_set()
    no_threads_left(qtbot)
    assert np.array_equal(viewer.layers[LABELS_NAME].data, labels) and not errors(said)
    # The model and its session are still there for the next image.
    viewer.add_image(stack(seed=5), name="second")
    assert widget.source.layer.name == "second"
    viewer.dims.set_current_step(0, 1)
    assert widget.segment(points=[[10, 10]])[0].bbox is not None
    assert widget.commit() == [2]  # the same Labels layer (it fits): the next id


def test_image_deleted_while_a_decode_runs(fake_widget, qtbot, monkeypatch, said):
    viewer, widget = fake_widget(np.zeros((48, 64), np.uint8), name="img")
    widget.compute_embedding()
    decode = widget.predictor.decode_lowres
    monkeypatch.setattr(widget.predictor, "decode_lowres",
                        lambda *a: time.sleep(0.3) or decode(*a))
    viewer.layers[POINTS_NAME].add([20, 30])
    qtbot.waitUntil(lambda: widget.decoder.busy, timeout=3000)
    viewer.layers.remove("img")
    widget.wait()
    assert widget.masks == [] and not viewer.layers[PREVIEW_NAME].data.any()
    assert not viewer.layers[LABELS_NAME].data.any() and not errors(said)
    assert widget.commit() == [] and said[-1] == ("info", "Nothing to commit: click on an object first.")


@pytest.mark.parametrize("action", ["remove image", "remove labels", "replace labels data",
                                    "close dock"])
def test_a_propagation_whose_layers_go_writes_nothing(fake_widget, qtbot, said, action):
    viewer, widget = fake_widget(stack(), name="stack")
    viewer.dims.set_current_step(0, 2)
    widget.segment(points=[[20, 30]])
    widget.commit()
    labels = viewer.layers[LABELS_NAME]
    before = labels.data.copy()
    panel = widget.propagation
    panel.score_spin.setValue(0.0)
    slow_encoder(widget, 0.1)
    panel.propagate()
    qtbot.waitUntil(lambda: panel.progress.value() > 0 or not panel.busy, timeout=3000)
    assert panel.busy
    if action == "remove image":
        viewer.layers.remove("stack")
    elif action == "remove labels":
        viewer.layers.remove(LABELS_NAME)
    elif action == "replace labels data":
        labels.data = np.zeros((3, 10, 10), np.uint32)
    else:
        viewer.window.remove_dock_widget(widget)
    panel.wait(timeout=10)
    no_threads_left(qtbot)
    assert not errors(said), said
    assert "nothing was written" in said[-1][1]
    if action == "replace labels data":
        assert not labels.data.any()
    elif action != "remove labels":
        assert np.array_equal(labels.data, before)
    if action == "remove image":
        assert said[-1][1].startswith("The image 'stack' was removed: propagation cancelled")


def test_labels_deleted_or_replaced_before_commit(fake_widget, said):
    viewer, widget = fake_widget(np.zeros((48, 64), np.uint8))
    widget.segment(points=[[20, 30]])
    viewer.layers.remove(LABELS_NAME)
    assert widget.commit() == [1]  # into a new Labels layer of the image's shape
    labels = viewer.layers[LABELS_NAME]
    assert labels.data.shape == (48, 64) and labels.data[20, 30] == 1
    assert widget.labels_combo.currentText() == LABELS_NAME

    widget.segment(points=[[10, 50]])
    labels.data = np.zeros((5, 5), np.uint32)  # e.g. a script replaced its data
    assert widget.commit() == []
    assert errors(said)[-1].startswith("Cannot commit: The Labels layer 'SegAny labels' has shape (5, 5)")
    assert len(widget.masks) == 1 and viewer.layers[PREVIEW_NAME].data.any()  # kept
    assert not labels.data.any()
    mine = viewer.add_labels(np.zeros((48, 64), np.uint16), name="mine")
    widget.set_labels(mine)
    assert widget.commit() == [1] and mine.data[10, 50] == 1


def test_deleted_prompt_and_preview_layers_come_back(fake_widget, qtbot, said):
    viewer, widget = fake_widget(np.zeros((48, 64), np.uint8))
    viewer.layers[BOXES_NAME].add_rectangles([[5, 5], [25, 30]])
    viewer.layers[POINTS_NAME].add([35, 50])
    widget.wait()
    assert len(widget.masks) == 2
    viewer.layers.remove(PREVIEW_NAME)  # the objects stay, and are shown again
    qtbot.waitUntil(lambda: PREVIEW_NAME in viewer.layers, timeout=2000)
    widget.wait()
    assert set(np.unique(viewer.layers[PREVIEW_NAME].data)) == {0, 1, 2}
    viewer.layers.remove(POINTS_NAME)  # its points go, and so does their object
    qtbot.waitUntil(lambda: POINTS_NAME in viewer.layers, timeout=2000)
    widget.wait()
    assert len(widget.masks) == 1 and widget.masks[0].key[0] == "box"
    assert viewer.layers.selection.active.name == POINTS_NAME
    viewer.layers.remove(BOXES_NAME)
    viewer.layers[POINTS_NAME].add([35, 50])  # the user clicks at once: the boxes come back
    widget.wait()
    assert BOXES_NAME in viewer.layers and len(widget.masks) == 1
    assert widget.masks[0].key == ("points",)
    press(viewer, "C")
    assert viewer.layers[LABELS_NAME].data[35, 50] == 1 and not errors(said)
    names = [layer.name for layer in viewer.layers]
    assert names.index(LABELS_NAME) < names.index(PREVIEW_NAME)  # prompts drawn on top


def test_renamed_and_reordered_layers(fake_widget, said):
    viewer, widget = fake_widget(np.zeros((48, 64), np.uint8), name="cells")
    other = viewer.add_image(np.zeros((48, 64), np.uint8), name="other")
    viewer.layers["cells"].name = "nuclei"
    viewer.layers[LABELS_NAME].name = "my objects"
    assert widget.image_combo.currentText() == "nuclei"
    assert widget.labels_combo.currentText() == "my objects"
    viewer.layers.move(viewer.layers.index(other), 0)
    viewer.layers.move(viewer.layers.index("my objects"), len(viewer.layers))
    widget.segment(points=[[20, 30]])
    assert widget.commit() == [1] and viewer.layers["my objects"].data[20, 30] == 1
    widget.image_combo.setCurrentText("other")
    widget.image_combo.activated.emit(widget.image_combo.currentIndex())
    assert widget.source.layer.name == "other" and not errors(said)


# ------------------------------------------------------------------------------ images
def test_images_that_cannot_be_segmented_are_refused_and_the_current_one_stays(
        fake_widget, said):
    viewer, widget = fake_widget(np.zeros((48, 64), np.uint8), name="good")
    bad = {
        "5d": np.zeros((2, 2, 2, 8, 8), np.uint8),
        "one row": np.zeros((1, 40), np.float32),
        "no slices": np.zeros((3, 1, 40), np.float32),
    }
    for name, data in bad.items():
        said.clear()
        widget.set_image(viewer.add_image(data, name=name))
        assert len(said) == 1 and said[0][0] == "error" and name in said[0][1]
        assert widget.source.layer.name == "good" and widget.image_combo.currentText() == "good"
    said.clear()
    cyx = viewer.add_image(np.zeros((4, 48, 64), np.float32), name="cyx")
    widget.set_image(cyx, channel_first=True, channels=(0, 5))
    assert errors(said) == ["Cannot segment this image: Channels [0, 5] do not fit the 4 "
                            "channels of 'cyx': pick 1 to 3 of 0..3."]  # just that one
    assert widget.source.layer.name == "good" and not widget.channel_check.isChecked()
    with pytest.raises((NotImplementedError, TypeError, ValueError)):
        viewer.add_image(np.ones((8, 8), complex))  # napari refuses complex images itself
    assert widget.segment(points=[[20, 30]])[0].bbox is not None
    widget.commit()
    viewer.layers["good"].data = np.zeros((2, 2, 2, 8, 8), np.uint8)  # e.g. by a script
    assert widget.source is None
    assert errors(said)[-1].startswith("Cannot segment 'good' any more: 'good' has 5 spatial axes")
    viewer.layers[POINTS_NAME].add([10, 10])  # a click on the old prompt layer: nothing breaks
    widget.wait()
    assert widget.commit() == [] and viewer.layers[LABELS_NAME].data.max() == 1


def test_odd_dtypes_and_layouts_segment_or_say_why(fake_widget, said):
    rng = np.random.default_rng(0)
    viewer, widget = fake_widget(np.eye(48, 64, dtype=bool), name="bool")
    layers = [viewer.layers["bool"]] + [viewer.add_image(data, name=name) for name, data in (
        ("int64 huge", rng.integers(0, 2 ** 62, (48, 64), dtype=np.int64)),
        ("rgba", rng.integers(0, 255, (48, 64, 4), dtype=np.uint8)),
        ("zcyx", rng.random((3, 2, 48, 64)).astype(np.float32)),  # channels not first: 4D
    )]
    for i, layer in enumerate(layers):
        widget.set_image(layer)
        rc = (8 + 10 * i, 8 + 14 * i)  # another object on the shared Labels layer
        assert widget.segment(points=[rc])[0].bbox is not None  # on the shown slice
        index = widget.index
        (new_id,) = widget.commit()
        assert widget.writer.layer.data[(*index, *rc)] == new_id
    assert not errors(said)
    widget.set_image(viewer.add_image(np.where(np.eye(48, 64) > 0, np.inf, 1.0), name="inf"))
    committed = widget.writer.layer.data.copy()  # the 2D objects above share this layer
    assert widget.segment(points=[[20, 30]]) == [] and errors(said) == [
        "Cannot embed this slice: The image contains NaN or infinite values: replace them "
        "(e.g. np.nan_to_num) first."]
    assert widget.commit() == [] and np.array_equal(widget.writer.layer.data, committed)


# ------------------------------------------------------------------------------ prompts
def test_prompts_off_the_image_are_ignored_with_one_warning(fake_widget, said):
    viewer, widget = fake_widget(np.zeros((48, 64), np.uint8), scale=(2, 0.5), translate=(10, 5))
    points = viewer.layers[POINTS_NAME]
    points.add(points.world_to_data([10 - 0.8, 5 + 0.5 * 30]))  # on the top edge pixel's outer half
    widget.wait()
    assert widget.masks[0].bbox[0] == 0 and not said  # snapped onto pixel row 0
    widget.discard()
    points.add(points.world_to_data([200.0, 5 + 0.5 * 30]))  # below the image, in world units
    widget.wait()
    assert said == [("warning", "Ignored 1 point(s) outside the image: click on the image, "
                                "and drag rectangles around objects. Ctrl+Z removes the last prompt.")]
    points.add([20, 30])
    widget.wait()
    assert len(said) == 1 and widget.masks[0].bbox is not None  # said once; the rest decodes
    widget.discard()
    said.clear()
    masks = widget.segment(boxes=[[-10, -20, 20, 30], [100, 100, 120, 130], [30, 40, 30, 50]])
    assert len(masks) == 1 and masks[0].bbox[0] == 0 and masks[0].bbox[2] == 0  # clipped
    assert said == [("warning", "Ignored 1 box(es) outside the image and 1 box(es) less than a "
                                "pixel wide or tall: click on the image, and drag rectangles "
                                "around objects. Ctrl+Z removes the last prompt.")]
    assert widget.commit() == [1] and not errors(said)


def test_prompts_on_another_slice_wait_for_it_and_prefetch_skips_bad_slices(fake_widget, said):
    data = stack().astype(np.float32)
    data[3, 0, 0] = np.nan
    viewer, widget = fake_widget(data)
    viewer.dims.set_current_step(0, 2)
    viewer.layers[POINTS_NAME].add([[4, 20, 30], [40, 20, 30]])  # z = 4, and beyond the stack
    widget.wait()
    assert widget.masks == [] and len(widget.cache) == 0 and not said
    widget.prefetch_check.setChecked(True)
    viewer.dims.set_current_step(0, 4)
    widget.wait()  # prefetches z = 5, and skips z = 3: it cannot be embedded (NaN)
    assert len(widget.masks) == 1 and widget.commit() == [1] and not said[:-1]
    labels = viewer.layers[LABELS_NAME].data
    assert labels[4, 20, 30] == 1 and not labels[2].any()
    viewer.dims.set_current_step(0, 3)
    assert widget.segment(points=[[20, 30]]) == [] and "NaN" in errors(said)[-1]


def test_efficient_sam_with_more_than_six_points(open_widget, tmp_path, monkeypatch, said):
    from _everything import TINY_EFFICIENT_SAM
    from napari_segany.models import registry

    spec = dataclasses.replace(
        TINY_EFFICIENT_SAM, name="tiny_esam", checkpoint_format="state_dict", input_size=64,
        builder_kwargs=dict(encoder_patch_embed_dim=32, encoder_num_heads=2, image_size=64))
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    torch.manual_seed(0)
    torch.save(spec.build().state_dict(), tmp_path / "esam.pt")
    viewer, widget = open_widget(np.random.default_rng(0).integers(0, 255, (48, 64), dtype=np.uint8))
    load(widget, tmp_path / "esam.pt", "tiny_esam")
    points = viewer.layers[POINTS_NAME]
    points.add([[5 + 6 * i, 10 + 8 * i] for i in range(6)])
    widget.wait()
    six = widget.masks
    assert len(six) == 1 and not said
    points.add([45, 60])
    widget.wait()
    assert errors(said) == ["Could not decode the prompts: EfficientSAM accepts at most 6 prompt "
                            "points per prompt set (a box counts as 2), got 7: remove some clicks."]
    assert widget.masks == six  # the last good mask stays shown
    press(points, "Ctrl+Z")
    widget.wait()
    assert len(points.data) == 6 and len(errors(said)) == 1


# -------------------------------------------------------------------------- checkpoints
def forged_fastsam_file(path):
    """What an ultralytics FastSAM file holds: a pickled network object, not a state dict."""
    names = ("ultralytics", "ultralytics.nn", "ultralytics.nn.tasks")
    modules = {name: types.ModuleType(name) for name in names}
    network = type("SegmentationModel", (torch.nn.Module,), {"__module__": "ultralytics.nn.tasks"})
    modules["ultralytics.nn.tasks"].SegmentationModel = network
    saved = {name: sys.modules.get(name) for name in names}
    sys.modules.update(modules)
    try:
        torch.save({"model": network(), "epoch": -1}, path)
    finally:
        for name, module in saved.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module
    return path


def test_a_wrong_checkpoint_keeps_the_previous_model(open_widget, fake_checkpoint,
                                                     tiny_checkpoint, tmp_path, qtbot, said):
    viewer, widget = open_widget(np.zeros((48, 64), np.uint8))
    load(widget, fake_checkpoint)
    loaded = widget.predictor
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny_checkpoint.read_bytes()[:4000])
    text = tmp_path / "readme.pt"
    text.write_text("not weights\n")
    wrong = [("tiny_sam", truncated), ("tiny_sam", text), ("tiny_sam", fake_checkpoint),
             ("mobile_sam", forged_fastsam_file(tmp_path / "FastSAM-s.pt"))]
    panel = widget.model_panel
    for name, path in wrong:  # as chosen in the file picker, then Load
        said.clear()
        panel.model_combo.setCurrentText(name)
        panel.checkpoint_edit.setText(str(path))
        panel.load_button.click()
        widget.wait()
        assert [level for level, _ in said] == ["error"] and path.name in said[0][1]
        assert widget.predictor is loaded and panel.load_button.isEnabled()
        assert widget.status_label.text() == "Could not load the model; fake_sam is still in use."
    assert widget.segment(points=[[20, 30]])[0].bbox is not None and widget.commit() == [1]


# ---------------------------------------------------------------- keys with nothing to do
def test_shortcuts_and_buttons_with_nothing_to_do(fake_widget, qtbot, said):
    viewer, widget = fake_widget(np.zeros((48, 64), np.uint8))
    press(viewer, "C")
    press(viewer, "Shift+C")
    press(viewer, "N")
    press(viewer.layers[POINTS_NAME], "Ctrl+Z")  # no prompt, no commit to undo
    press(viewer, "Shift+S")
    widget.cancel_button.click()
    widget.cancel_button.click()
    widget.propagation.cancel_button.click()
    assert said == [
        ("info", "Nothing to commit: click on an object first."),
        ("error", "Cannot propagate: The image is 2D: propagation needs a z-stack or a time series."),
    ]
    said.clear()
    viewer.add_image(stack(), name="stack")
    widget.set_image("stack")
    press(viewer, "Shift+S")
    assert errors(said) == ["Cannot propagate: No committed object on the shown slice: commit "
                            "one (C), or set its id in 'Object'."]
    nan = viewer.add_image(np.full((48, 64), np.nan, np.float32), name="nan")
    widget.set_image(nan)
    widget.embed_button.click()  # no traceback from the button: a notification
    assert "NaN" in said[-1][1]


def test_cancel_twice_and_click_again(open_widget, fake_checkpoint, qtbot, said):
    viewer, widget = open_widget(stack())
    load(widget, fake_checkpoint)
    slow_encoder(widget, 0.2)
    viewer.dims.set_current_step(0, 0)
    viewer.layers[POINTS_NAME].add([0, 20, 30])
    qtbot.waitUntil(lambda: widget.embeddings.job is not None, timeout=3000)
    widget.cancel_button.click()
    widget.cancel_button.click()
    assert said == [("info", "Embedding cancelled.")]
    viewer.layers[POINTS_NAME].add([0, 25, 30])  # the user clicks again: a new embedding
    widget.wait()
    assert len(widget.masks) == 1 and len(widget.cache) == 1
    no_threads_left(qtbot)


def test_labels_layers_that_cannot_take_the_commit(fake_widget, said):
    viewer, widget = fake_widget(np.zeros((48, 64), np.uint8))
    viewer.add_labels(np.zeros((10, 10), np.uint8), name="small")
    widget.labels_combo.setCurrentText("small")  # picked by the user
    widget.labels_combo.activated.emit(widget.labels_combo.currentIndex())
    assert "has shape (10, 10)" in errors(said)[-1]
    assert widget.labels_combo.currentText() == LABELS_NAME == widget.writer.layer.name
    full = np.zeros((48, 64), np.uint8)
    full[0, 0] = 255
    mine = viewer.add_labels(full, name="uint8 labels")
    widget.set_labels(mine)
    widget.segment(points=[[20, 30]])
    assert widget.commit() == []
    assert "holds uint8 ids (at most 255)" in errors(said)[-1]
    assert np.array_equal(mine.data, full) and len(widget.masks) == 1
    mine.data = mine.data.astype(np.uint16)  # what the message says to do
    assert widget.commit() == [256] and mine.data[20, 30] == 256


# ------------------------------------------------------------------------------- closing
def test_closing_the_dock_while_embedding_then_reopening(open_widget, fake_checkpoint, qtbot,
                                                         said):
    viewer, widget = open_widget(stack(), name="stack")
    load(widget, fake_checkpoint)
    viewer.dims.set_current_step(0, 0)
    widget.segment(points=[[20, 30]])
    widget.commit()
    slow_encoder(widget, 0.2)
    viewer.dims.set_current_step(0, 3)
    viewer.layers[POINTS_NAME].add([3, 20, 30])
    qtbot.waitUntil(lambda: widget.embeddings.job is not None, timeout=3000)
    viewer.window.remove_dock_widget(widget)
    assert widget.closed
    no_threads_left(qtbot)
    qtbot.wait(50)
    assert len(widget.cache) == 1 and not errors(said)  # the cancelled embedding is dropped
    viewer.layers[POINTS_NAME].add([3, 30, 40])  # the closed widget reacts no more
    qtbot.wait(50)
    assert not widget.decoder.busy and widget.embeddings.job is None
    assert not [b for b, f in viewer.keymap.items() if getattr(f, "segany_widget", None)]

    _, again = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Anything")
    assert again is not widget
    assert [layer.name for layer in viewer.layers].count(LABELS_NAME) == 1
    assert again.writer.layer.name == LABELS_NAME  # adopted, not a second one
    load(again, fake_checkpoint)
    again.discard()
    assert again.segment(points=[[35, 50]])[0].bbox is not None
    assert again.commit() == [2] and viewer.layers[LABELS_NAME].data[0, 20, 30] == 1


def test_closing_the_viewer_while_workers_run(open_widget, tiny_checkpoint, fake_checkpoint,
                                              qtbot):
    viewer, widget = open_widget(np.zeros((48, 64), np.uint8))
    load(widget, fake_checkpoint)
    slow_encoder(widget, 0.2)
    viewer.layers[POINTS_NAME].add([20, 30])
    qtbot.waitUntil(lambda: widget.embeddings.job is not None, timeout=3000)
    widget.set_model("tiny_sam", checkpoint=str(tiny_checkpoint), device="cpu", wait=False)
    viewer.close()  # the worker results arrive after the widget's controls are gone
    no_threads_left(qtbot)
    qtbot.wait(100)  # (an exception in a callback would fail the test: pytest-qt)


# ------------------------------------------------------------------------------- undo
def test_undo_after_commit_after_propagation(fake_widget, said):
    viewer, widget = fake_widget(stack())
    labels = viewer.layers[LABELS_NAME]
    viewer.dims.set_current_step(0, 2)
    widget.segment(points=[[15, 15]])
    assert widget.commit() == [1]
    after_commit = labels.data.copy()
    widget.propagation.score_spin.setValue(0.0)
    widget.propagate(wait=True)
    after_propagation = labels.data.copy()
    assert [z for z in range(6) if (after_propagation[z] == 1).any()] == list(range(6))
    widget.segment(points=[[35, 50]])
    assert widget.commit() == [2]
    after_second = labels.data.copy()
    press(viewer.layers[POINTS_NAME], "Ctrl+Z")  # no prompt left: undoes the last commit
    assert np.array_equal(labels.data, after_propagation)
    labels.undo()
    assert np.array_equal(labels.data, after_commit)
    labels.undo()
    assert not labels.data.any()
    for state in (after_commit, after_propagation, after_second):
        labels.redo()
        assert np.array_equal(labels.data, state)
    assert not errors(said)

"""The Segment Everything widget under bad input and interruptions, driven as a user drives
it: layers deleted or replaced while a run computes or before a commit, Cancel then Run, the
dock or the viewer closed mid-run, files that are not what their field asks for, odd images.

The promise checked throughout: a clear notification (never an exception in the event loop),
nothing half-written (no result of an interrupted run, committed labels intact), no thread
left behind, and the widget usable afterwards.  Tiny models with synthesized weights.

"Mid-run" is made deterministic by a gate in the grid's batch decoder: the run stops inside
its decoding until the test has done what the user does, then goes on.
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from qtpy.QtCore import Qt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _everything import (  # noqa: E402
    DETECTOR_FILE, FASTSAM_FILE, NO_FILTERS, RANDOM_WEIGHTS, TINY_EFFICIENT_SAM, cells_image,
    random_state_dict,
)

from napari_segany.engine.everything import grid  # noqa: E402
from napari_segany.gui.everything import widget as everything_widget  # noqa: E402
from napari_segany.gui.everything.layers import RESULT_NAME, is_result_layer  # noqa: E402
from napari_segany.gui.shared.labels_io import LABELS_NAME  # noqa: E402
from napari_segany.models import registry  # noqa: E402

pytestmark = pytest.mark.gui
needs_files = pytest.mark.skipif(not DETECTOR_FILE.exists(), reason="../shared/parity is absent")
SHAPE = (96, 128)


@pytest.fixture
def gate(monkeypatch):
    """Decoder batches after the first two wait until ``gate.release()``; ``gate.wait()``
    returns once a batch is waiting, i.e. the run is provably in progress."""

    class Gate:
        def __init__(self):
            self.reached, self.opened, self.calls = threading.Event(), threading.Event(), 0

        def wait(self):
            assert self.reached.wait(60), "the run never reached its decoder"

        def release(self):
            self.opened.set()

    g = Gate()
    real = grid._process_batch

    def gated(*args, **kwargs):
        g.calls += 1
        if g.calls > 2:
            g.reached.set()
            g.opened.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(grid, "_process_batch", gated)
    yield g
    g.release()  # never leave a worker blocked


@pytest.fixture
def everything(make_napari_viewer, tiny_checkpoint):
    """``everything(image, **layer_kwargs)`` -> (viewer, widget) set for the tiny SAM grid."""

    def make(image=None, **layer_kwargs):
        viewer = make_napari_viewer()
        viewer.add_image(cells_image() if image is None else image, name="cells", **layer_kwargs)
        _, widget = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Everything")
        widget.set_model("tiny_sam", checkpoint=str(tiny_checkpoint), device="cpu")
        widget.set_params(points_per_side=6, points_per_batch=4, **RANDOM_WEIGHTS)
        widget.set_filters(**NO_FILTERS)
        return viewer, widget

    return make


def stack(n=3):
    return np.stack([cells_image(seed=s) for s in range(n)])


def decode_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("segany-decode")]


def assert_idle(widget):
    """Usable again: no job, Run enabled, Cancel hidden, no decoder thread left."""
    assert widget._job is None and not widget.busy
    assert widget.run_button.isEnabled() and not widget.cancel_button.isVisibleTo(widget)
    assert decode_threads() == []


def results_layers(viewer):
    return [layer for layer in viewer.layers if is_result_layer(layer)]


# ----------------------------------------------------------------------------- mid-run changes


def test_image_deleted_mid_run_cancels_cleanly(everything, gate, shown):
    viewer, widget = everything(stack())
    widget.run(all_slices=True, wait=False)
    gate.wait()
    viewer.layers.remove("cells")
    gate.release()
    widget.wait()
    assert widget.results == {} and widget.source is None and results_layers(viewer) == []
    assert ("info", "Everything mode cancelled (the image layer was removed); nothing was "
                    "written.") in shown
    assert_idle(widget)


def test_image_data_replaced_mid_run_drops_the_run(everything, gate, shown):
    viewer, widget = everything()
    widget.run(wait=False)
    gate.wait()
    viewer.layers["cells"].data = cells_image(seed=7)  # e.g. a filter applied in place
    gate.release()
    widget.wait()
    assert widget.results == {} and results_layers(viewer) == []  # nothing of the old pixels
    assert ("info", "Everything mode cancelled (the image changed); nothing was written.") in shown
    assert_idle(widget)
    assert widget.run()[()].n_prompts == 36  # the new pixels run normally


def test_filters_method_and_model_changed_mid_run(everything, gate, shown):
    """The run finishes with what it started with; the filters shown are the current ones."""
    viewer, widget = everything()
    widget.run(wait=False)
    gate.wait()
    widget.filters.min_area.setValue(10**4 // 2)  # a slider moved while the run computes
    widget.set_method("fastsam")  # another method, another model list
    widget.set_model("fastsam_s")
    gate.release()
    widget.wait()
    result = widget.results[()]
    assert result.method == "grid" and result.n_prompts == 36
    assert widget.shown[()].records == [r for r in result.records if r["area"] >= 5000]
    assert not [n for n in shown if n[0] == "error"]
    assert_idle(widget)


def test_run_pressed_twice_runs_once(everything, gate, qtbot, shown):
    viewer, widget = everything()
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    gate.wait()
    job = widget._job
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)  # disabled: no effect
    widget.run(wait=False)  # from a script
    assert widget._job is job
    assert shown[-1] == ("info", "Everything mode is already running (or a model is loading); "
                                 "wait or Cancel.")
    gate.release()
    widget.wait()
    assert widget.results[()].n_prompts == 36
    assert_idle(widget)


def test_cancel_then_run_at_once_starts_after_the_cancelled_one(everything, gate, qtbot, shown):
    viewer, widget = everything(stack())
    widget.run(all_slices=True, wait=False)
    gate.wait()
    qtbot.mouseClick(widget.cancel_button, Qt.MouseButton.LeftButton)
    assert widget.run_button.isEnabled() and widget.status_label.text().startswith("Cancelling")
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)  # the user does not wait
    assert "when the cancelled run has stopped" in widget.status_label.text()
    gate.release()
    widget.wait()
    assert ("info", "Everything mode cancelled; nothing was written.") in shown
    assert sorted(widget.results) == [(0,), (1,), (2,)]  # the second run, whole
    assert_idle(widget)


@pytest.mark.parametrize("how", ["dock closed", "viewer closed"])
def test_closing_mid_run_leaves_no_thread(everything, gate, qtbot, shown, how):
    viewer, widget = everything(stack())
    widget.run(all_slices=True, wait=False)
    gate.wait()
    worker = widget._job.worker
    ended = []
    worker.finished.connect(lambda: ended.append(True))
    if how == "dock closed":
        viewer.window.remove_dock_widget(widget)  # the dock's close button
        assert widget.closed
    else:
        viewer.close()  # napari quits the worker itself: the job must still close its threads
    gate.release()
    qtbot.waitUntil(lambda: bool(ended), timeout=30_000)
    qtbot.waitUntil(lambda: decode_threads() == [], timeout=10_000)
    if how == "dock closed":  # the viewer goes on without the widget reacting to it
        assert widget.results == {} and results_layers(viewer) == []
        viewer.add_image(cells_image(), name="later")
        assert widget.image_combo.findText("later") == -1


# ----------------------------------------------------------------------------- commits


def test_result_layer_deleted_or_taken_by_the_user(everything, shown):
    viewer, widget = everything()
    mine = viewer.add_labels(np.full((10, 10), 3, np.uint8), name=RESULT_NAME)  # the user's
    result = widget.run()[()]
    assert mine in viewer.layers and (mine.data == 3).all()  # never rewritten nor removed
    ours = results_layers(viewer)
    assert len(ours) == 1 and ours[0].name != RESULT_NAME
    viewer.layers.remove(ours[0])
    n = widget.commit()  # from the stored result: the scratch layer is not needed
    assert n == len(np.unique(result.labels)) - 1
    assert np.array_equal(viewer.layers[LABELS_NAME].data > 0, result.labels > 0)
    widget.set_filters(min_area=1)  # the result layer comes back on the next refresh
    assert len(results_layers(viewer)) == 1


def test_target_deleted_or_replaced_before_commit(everything, shown):
    viewer, widget = everything()
    result = widget.run()[()]
    mine = viewer.add_labels(np.zeros(SHAPE, np.uint32), name="mine")
    widget.target_combo.setCurrentText("mine")
    viewer.layers.remove(mine)
    assert widget.commit() > 0 and widget.target_combo.currentText() == LABELS_NAME
    target = viewer.layers[LABELS_NAME]
    before = target.data.copy()
    target.data = np.zeros((5, 5), np.uint32)  # replaced by another shape
    assert widget.commit() == 0 and shown[-1][0] == "error" and "has shape (5, 5)" in shown[-1][1]
    target.data = before
    assert np.array_equal(target.data > 0, result.labels > 0)


def test_commit_that_would_overflow_writes_nothing(everything, shown):
    viewer, widget = everything(stack())
    results = widget.run(all_slices=True)
    per_slice = [len(np.unique(r.labels)) - 1 for r in results.values()]
    existing = np.zeros(stack().shape, np.uint8)
    existing[0, 0, 0] = 255 - per_slice[0] - per_slice[1] // 2  # the first slices fit, not all
    target = viewer.add_labels(existing.copy(), name="small ids")
    widget.target_combo.setCurrentText("small ids")
    assert widget.commit(all_slices=True, preserve=False) == 0
    assert np.array_equal(target.data, existing)  # not one slice of a half commit
    assert shown[-1][0] == "error" and "Nothing was written" in shown[-1][1]
    widget.target_combo.setCurrentText(everything_widget.NEW_LABELS)
    assert widget.commit(all_slices=True) == sum(per_slice)  # the results were kept


# ----------------------------------------------------------------------------- wrong files


@pytest.mark.parametrize("kind", ["fastsam file", "sam checkpoint", "text file"])
def test_detector_file_that_is_not_a_detector(everything, tiny_checkpoint, tmp_path, shown, kind):
    if kind == "fastsam file" and not FASTSAM_FILE.exists():
        pytest.skip("../shared/parity is absent")
    path = {"fastsam file": FASTSAM_FILE, "sam checkpoint": tiny_checkpoint,
            "text file": tmp_path / "ObjectAwareModel.pt"}[kind]
    if kind == "text file":
        path.write_text("not a checkpoint")
    viewer, widget = everything()
    widget.set_method("object_aware", detector=path)
    widget.set_params(imgsz=256, max_det=4)
    assert widget.run() == {}
    level, message = shown[-1]
    assert level == "error" and str(path) in message
    if kind == "fastsam file":
        assert "is a FastSAM network" in message and "ObjectAwareModel.pt" in message
    assert widget.detector is None  # the wrong network is not kept for the next run
    assert "nothing was written" in widget.status_label.text() and results_layers(viewer) == []
    assert_idle(widget)


def test_object_aware_without_a_detector_says_where_to_choose_it(everything, shown):
    viewer, widget = everything()
    widget.set_method("object_aware")  # Detector field empty, nothing in the cache
    widget.run(wait=False)
    assert widget._job is None  # refused before any thread starts
    level, message = shown[-1]
    assert level == "error" and "ObjectAwareModel.pt" in message and "Detector field" in message


def test_missing_weights_name_the_widget_s_field(everything, shown):
    viewer, widget = everything()
    widget.set_model("offline_sam")  # registered without a URL, not in the cache
    widget.run()
    level, message = shown[-1]
    assert level == "error" and "offline_sam.pt in the Checkpoint field" in message
    assert "checkpoint='" not in message  # no Python in a GUI message
    assert_idle(widget)


@needs_files
def test_efficient_sam_runs_grid_and_object_aware(everything, tmp_path, monkeypatch, shown):
    monkeypatch.setitem(registry.REGISTRY, TINY_EFFICIENT_SAM.name, TINY_EFFICIENT_SAM)
    checkpoint = tmp_path / "tiny_efficient_sam.pt"
    torch.save({"model": random_state_dict(TINY_EFFICIENT_SAM)}, checkpoint)
    viewer, widget = everything()
    widget.model_panel.refresh_models()
    widget.set_method("object_aware", detector=DETECTOR_FILE)
    widget.set_model("tiny_efficient_sam", checkpoint=str(checkpoint), device="cpu")
    widget.set_params(imgsz=256, max_det=4)
    assert widget.run()[()].n_prompts == 4
    widget.set_method("grid")
    widget.set_params(points_per_side=4, **RANDOM_WEIGHTS)
    assert widget.run()[()].n_prompts == 16
    assert widget.cache.hits == 1  # the same embedding served both methods
    assert not [n for n in shown if n[0] == "error"]


# ----------------------------------------------------------------------------- odd images


@pytest.mark.parametrize("kind", ["bool", "int64 huge", "rgba", "float16"])
def test_odd_but_valid_images_run(everything, shown, kind):
    image = cells_image()
    data = {"bool": image > 150, "int64 huge": (image * 1e15).astype(np.int64),
            "rgba": np.dstack([image.astype(np.uint8)] * 4), "float16": image.astype(np.float16)}[kind]
    viewer, widget = everything(data)
    widget.set_params(points_per_side=4)
    result = widget.run()[()]
    assert result.image_shape == SHAPE and result.n_prompts == 16
    assert not [n for n in shown if n[0] == "error"]


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_pixels_are_refused_by_name(everything, shown, value):
    data = stack()
    data[1, 5:9, 5:9] = value
    viewer, widget = everything(data)
    assert widget.run(all_slices=True) == {}
    level, message = shown[-1]
    assert level == "error" and "'cells', slice [1]" in message and "NaN or infinite" in message
    assert results_layers(viewer) == [] and LABELS_NAME not in viewer.layers
    assert_idle(widget)


def test_image_with_too_many_axes_is_refused_without_exception(make_napari_viewer, qtbot, shown):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((2, 2, 2, 30, 30), np.float32), name="5d")
    _, widget = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Everything")
    assert shown and shown[0][0] == "error" and "5 spatial axes" in shown[0][1]
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)  # pytest-qt fails on a raise
    assert shown[-1] == ("error", "No image: open one and pick it in the widget, or call "
                                  "set_image(layer).")
    assert widget._job is None

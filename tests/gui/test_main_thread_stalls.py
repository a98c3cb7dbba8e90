"""Issue 14 item 8, the mechanism that keeps the docks from stalling the viewer
(benchmarks/bench_stalls.py measures the stalls themselves; no timing here):

* Segment Everything: masks are selected and painted in workers, never on the main thread
  (run, filter move, slice change, commit);
* its commit, and a propagation of the Segment Anything dock, are written in several steps
  through the event loop, and are still one undo step;
* cancelled between two steps, they leave the Labels layer exactly as it was;
* the same with a linked 3D run and feature filters (issue 16): 3D ids, feature ranges and
  the committed feature rows are worked out in the workers too;
* the workflow docks' writes (linking slices, 3D objects into a layer, track corrections)
  go the same way: in steps, one undo step, a cancel mid-write puts everything back.
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from _everything import cells_image
from napari_segany.engine.everything.result import EverythingResult
from napari_segany.gui.everything import commit as commit_module
from napari_segany.gui.shared import steps as steps_module
from napari_segany.gui.shared.labels_io import LABELS_NAME, UndoStep
from napari_segany.gui.workflows import pixel_writes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflows"))
from _workflow_data import same_partition, shuffle_per_slice, spheres  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture
def paint_threads(monkeypatch):
    """The threads EverythingResult.paint runs in (True: the main thread)."""
    on_main = []
    original = EverythingResult.paint

    def paint(self, *args, **kwargs):
        on_main.append(threading.current_thread() is threading.main_thread())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(EverythingResult, "paint", paint)
    return on_main


@pytest.fixture
def small_steps(monkeypatch):
    """Commits written 40 pixels per step; the writes, as (step count, event loop turns)."""
    monkeypatch.setattr(commit_module, "CHUNK_PIXELS", 40)
    monkeypatch.setattr(pixel_writes, "CHUNK_PIXELS", 40)
    monkeypatch.setattr(steps_module, "BUDGET_S", 0.0)  # one step per event-loop turn
    writes = []
    original = UndoStep.write

    def write(self, indices, values):
        writes.append(indices[-1].size)
        return original(self, indices, values)

    monkeypatch.setattr(UndoStep, "write", write)
    return writes


def test_masks_are_painted_in_workers_only(grid_everything, paint_threads):
    stack = np.stack([cells_image(seed=s) for s in range(3)])
    viewer, widget = grid_everything(stack)
    results = widget.run(all_slices=True)
    layer = widget.viewer.layers["SegAny everything"]
    assert all(np.array_equal(layer.data[z], widget.shown[(z,)].paint()) for (z,) in results)
    paint_threads.clear()
    areas = sorted(r["area"] for r in results[(0,)].records)
    widget.set_filters(min_area=areas[len(areas) // 2])  # a filter move
    viewer.dims.set_current_step(0, 2)  # another slice shown
    widget.wait()
    assert widget.commit(all_slices=True) > 0
    assert paint_threads and not any(paint_threads)  # painted, and never on the main thread
    kept = widget.shown[(2,)]
    assert np.array_equal(layer.data[2], kept.paint()) and len(kept) < len(results[(2,)])


def test_commit_is_written_in_steps_as_one_undo_step(grid_everything, small_steps):
    stack = np.stack([cells_image(seed=s) for s in range(2)])
    viewer, widget = grid_everything(stack)
    results = widget.run(all_slices=True)
    n = widget.commit(all_slices=True)
    target = viewer.layers[LABELS_NAME]
    assert len(small_steps) > 10 and max(small_steps) <= 40  # many small writes
    assert n == sum(len(np.unique(r.labels)) - 1 for r in results.values())
    assert np.array_equal(target.data > 0, np.stack([results[(z,)].labels > 0 for z in (0, 1)]))
    assert "Committed" in widget.status_label.text() and not widget.busy
    target.undo()  # one Ctrl+Z: the whole commit, both slices
    assert target.data.max() == 0
    target.redo()
    assert target.data.max() == n


def test_cancelled_commit_leaves_the_labels_as_they_were(grid_everything, small_steps, qtbot):
    viewer, widget = grid_everything()
    widget.run()
    before = np.zeros((96, 128), np.uint32)
    before[10:20, 10:20] = 7  # the user's own object
    target = viewer.add_labels(before.copy(), name=LABELS_NAME)
    widget.target_combo.setCurrentText(LABELS_NAME)
    widget.commit(preserve=False, wait=False)
    qtbot.waitUntil(lambda: len(small_steps) >= 3, timeout=30000)  # mid-write
    assert widget.busy and not np.array_equal(target.data, before)
    widget.cancel()
    widget.wait()
    assert np.array_equal(target.data, before) and not widget.busy
    assert "cancelled" in widget.status_label.text()
    target.undo()  # nothing of the cancelled commit is left in the history either
    assert np.array_equal(target.data, before)
    assert widget.commit(preserve=False) > 0  # a later commit works as usual
    assert target.data[15, 15] != 7


@pytest.mark.parametrize("napari_abort", [True, False])
def test_undo_step_abort_puts_back_what_was_written(napari_abort):
    """Also without napari's stroke abort (older napari): the step is undone."""
    from napari.layers import Labels

    before = np.zeros((20, 20), np.uint32)
    before[:5] = 3
    layer = Labels(before.copy())
    layer.data_setitem((np.array([19]), np.array([19])), 9)  # an earlier edit, kept
    edited = layer.data.copy()
    step = UndoStep(layer)
    if not napari_abort:
        step._abort_staged = None
    step.write((np.arange(10), np.arange(10)), np.full(10, 5, np.uint32))
    step.write((np.arange(10), np.full(10, 2)), np.full(10, 6, np.uint32))
    assert layer.data[4, 4] == 5 and layer.data[7, 2] == 6
    step.abort()
    assert np.array_equal(layer.data, edited)
    layer.undo()  # the earlier edit is the one undone
    assert np.array_equal(layer.data, before)


def test_propagation_is_written_in_steps_and_cancel_mid_write_restores(
        open_widget, tiny_checkpoint, qtbot, monkeypatch):
    """The Segment Anything dock's propagation: label writes computed in the worker, written
    in many small steps as one undo step; a cancel between two steps puts everything back."""
    from napari_segany.gui.shared import labels_io

    monkeypatch.setattr(steps_module, "BUDGET_S", 0.0)  # one step per event-loop turn
    small = labels_io.write_in_chunks
    monkeypatch.setattr("napari_segany.gui.interactive.propagation_panel.write_in_chunks",
                        lambda step, indices, values: small(step, indices, values, chunk=30))
    viewer, widget = open_widget(sample="nuclei_zstack")
    widget.set_model("tiny_sam", checkpoint=str(tiny_checkpoint), device="cpu")
    viewer.dims.set_current_step(0, 5)
    widget.segment(points=[(128, 128)])
    object_id = widget.commit()[0]
    labels = viewer.layers[LABELS_NAME]
    panel = widget.propagation
    panel.score_spin.setValue(0.0)
    panel.area_spin.setValue(100.0)
    panel.past_empty_check.setChecked(True)
    before = labels.data.copy()
    writes = []
    monkeypatch.setattr(UndoStep, "write", lambda self, i, v, w=UndoStep.write: (
        writes.append(i[0].size), w(self, i, v))[-1])
    panel.propagate()
    qtbot.waitUntil(lambda: len(writes) >= 3, timeout=60000)  # mid-write
    assert panel.busy and not np.array_equal(labels.data, before)
    panel.cancel()
    assert not panel.busy and np.array_equal(labels.data, before)
    panel.propagate(wait=True)  # again, to the end
    assert len(writes) > 6 and max(writes) <= 30
    assert sum((labels.data[z] == object_id).any() for z in range(24)) > 1
    labels.undo()  # one step: the whole propagation
    assert np.array_equal(labels.data, before)


def test_linked_objects_and_feature_filters_stay_off_the_main_thread(
        grid_everything, paint_threads, small_steps, qtbot):
    """Issue 16 with item 8: a linked 3D run under a feature filter is selected, painted and
    prepared for its commit in workers (3D ids and feature ranges included), written in steps
    as one undo step with one feature row per 3D object; a cancel mid-write leaves the pixels
    and the rows as they were."""
    viewer, widget = grid_everything(np.stack([cells_image(seed=s) for s in range(3)]))
    widget.set_linking(True)
    widget.run()
    layer, view = viewer.layers["SegAny everything"], widget.view
    areas = np.sort(np.concatenate([t["area"] for t in widget.features.values()]))
    threshold = float(areas[len(areas) // 2])
    paint_threads.clear()
    widget.filter_features(area=(threshold, None))  # other slices stale until needed
    z = widget.shown_index()
    kept = widget.shown[z]
    assert 0 < len(kept) < len(widget.results[z]) and len(view.stale) == 2
    assert all(r["area"] >= threshold for r in kept.records)
    assert set(np.unique(layer.data[z])) - {0} <= set(view.links[z][view.rows[z] + 1])
    target = viewer.add_labels(np.zeros(layer.data.shape, np.uint32), name=LABELS_NAME)
    widget.target_combo.setCurrentText(LABELS_NAME)
    widget.commit(wait=False)
    qtbot.waitUntil(lambda: len(small_steps) >= 3, timeout=30000)  # mid-write
    widget.cancel()
    widget.wait()
    assert target.data.max() == 0 and len(target.features) == 0
    n = widget.commit()  # every slice (the linked scope), the stale ones selected in the worker
    for z in range(3):  # the result layer shows every slice's selection
        viewer.dims.set_current_step(0, z)
        widget.wait()
    assert paint_threads and not any(paint_threads)  # painted, never on the main thread
    assert same_partition(target.data, layer.data)  # the kept masks, one id per 3D object
    ids = set(np.unique(target.data)) - {0}
    assert n == len(ids) and sorted(target.features["index"]) == sorted(ids)
    assert (target.features["planes"] >= 1).all()
    target.undo()  # one step: the whole 3D commit
    assert target.data.max() == 0


def linking_dock(make_napari_viewer):
    """The 3D Objects dock set to link a Labels layer of spheres cut into per-slice ids."""
    truth = spheres((8, 40, 48), [(3, 12, 14), (4, 26, 32)], [4, 6])
    per_slice = shuffle_per_slice(truth)
    viewer = make_napari_viewer()
    layer = viewer.add_labels(per_slice.copy(), name="per slice")
    _, widget = viewer.window.add_plugin_dock_widget("napari-segany", "3D Objects")
    widget.link_picker.choose("per slice")
    return widget, layer, per_slice, truth


def test_workflow_writes_are_in_steps_as_one_undo_step(make_napari_viewer, small_steps):
    widget, layer, per_slice, truth = linking_dock(make_napari_viewer)
    widget.link()  # waits for the job and its writes
    assert len(small_steps) > 10 and max(small_steps) <= 40  # many small writes
    assert same_partition(layer.data, truth) and widget.status_label.text().startswith("Linked")
    layer.undo()  # one Ctrl+Z: the whole linking
    assert np.array_equal(layer.data, per_slice)


def test_workflow_write_cancelled_mid_write_restores(make_napari_viewer, small_steps,
                                                     monkeypatch):
    from qtpy.QtCore import QTimer

    widget, layer, per_slice, _ = linking_dock(make_napari_viewer)
    seen = []
    written = UndoStep.write  # small_steps' counting write

    def write(self, indices, values):
        written(self, indices, values)
        if len(small_steps) == 3:  # the user presses Cancel after the third step
            seen.append((widget.jobs.busy, np.array_equal(layer.data, per_slice)))
            QTimer.singleShot(0, widget.jobs.cancel_button.click)

    monkeypatch.setattr(UndoStep, "write", write)
    widget.link()
    assert seen == [(True, False)]  # mid-write: busy, pixels changed
    assert np.array_equal(layer.data, per_slice) and not widget.jobs.busy
    assert "cancelled" in widget.status_label.text()
    layer.undo()  # nothing of the cancelled write is in the history
    assert np.array_equal(layer.data, per_slice)


def test_result_layer_is_made_once_and_emptied_for_another_shape(grid_everything, monkeypatch):
    """Another image's shape (here 2D, then a stack) empties the result layer rather than
    removing it and adding a new one (napari's slowest main-thread work)."""
    viewer, widget = grid_everything()
    widget.run()
    layer = viewer.layers["SegAny everything"]
    added = []
    monkeypatch.setattr(type(viewer), "add_labels",
                        lambda *a, **k: added.append(1) or pytest.fail("a new layer"))
    stack = np.stack([cells_image(seed=s) for s in (3, 4)])
    viewer.add_image(stack, name="stack")
    widget.set_image("stack")
    results = widget.run(all_slices=True)
    assert not added and [l for l in viewer.layers if l.name.startswith("SegAny every")] == [layer]
    assert layer.data.shape == stack.shape and layer.ndim == 3
    assert all(np.array_equal(layer.data[z], widget.shown[(z,)].paint()) for (z,) in results)

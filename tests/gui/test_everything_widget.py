"""The Segment Everything widget driven as a user drives it: pick a method and a model, run
(in a worker, with progress), move the filter sliders, commit into the interactive widget's
Labels layer, undo; stacks, cancel, errors.  Tiny models with synthesized weights."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import Qt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _everything import (  # noqa: E402
    DETECTOR_FILE, FASTSAM_FILE, NO_FILTERS, RANDOM_WEIGHTS, cells_image, visible_fastsam,
)

from napari_segany.gui.everything.jobs import ModelChoice  # noqa: E402
from napari_segany.gui.everything.layers import RESULT_NAME  # noqa: E402
from napari_segany.gui.shared.labels_io import LABELS_NAME  # noqa: E402

pytestmark = pytest.mark.gui
needs_files = pytest.mark.skipif(not DETECTOR_FILE.exists(), reason="../shared/parity is absent")


def test_grid_run_live_filters_commit_and_undo(grid_everything, qtbot, shown):
    viewer, widget = grid_everything()
    assert widget.image_combo.currentText() == "cells" and not widget.scope_combo.isEnabled()
    results = widget.run()
    result = results[()]
    assert result.n_prompts == 16 and len(result) > 1
    layer = viewer.layers[RESULT_NAME]
    assert np.array_equal(layer.data, result.labels)
    assert f"{len(result)} objects shown (of {len(result)} found)" in widget.count_label.text()
    # filters: live, on the stored masks (the model is not called again)
    widget.model.decode = None  # any decoder call would now fail
    areas = sorted(r["area"] for r in result.records)
    widget.set_filters(min_area=areas[-1])
    kept = widget.shown[()]
    assert len(kept) == areas.count(areas[-1]) and np.array_equal(layer.data, kept.labels)
    widget.filters.min_area.setValue(0)  # a slider move, debounced
    widget.wait()
    assert len(widget.shown[()]) == len(result)
    # commit: into a new "SegAny labels" (the interactive widget's target), one undo step
    qtbot.mouseClick(widget.commit_button, Qt.MouseButton.LeftButton)
    widget.wait()  # prepared in a worker, written in steps
    target = viewer.layers[LABELS_NAME]
    assert np.array_equal(target.data > 0, result.labels > 0)
    assert target.data.max() == len(np.unique(result.labels)) - 1
    target.undo()
    assert target.data.max() == 0
    assert ("info", f"Committed {len(np.unique(result.labels)) - 1} objects into '{LABELS_NAME}'.") in shown


def test_commit_preserves_existing_labels_and_continues_ids(grid_everything):
    viewer, widget = grid_everything()
    existing = np.zeros(viewer.layers["cells"].data.shape, np.uint32)
    existing[:10, :10] = 7
    target = viewer.add_labels(existing, name="mine")
    widget.run()
    widget.target_combo.setCurrentText("mine")
    n = widget.commit()
    assert (target.data[:10, :10] == 7).all()  # never overwritten
    assert set(np.unique(target.data)) == {0, 7} | set(range(8, 8 + n))
    target.undo()
    assert np.array_equal(target.data, existing)


def test_second_run_reuses_the_embedding(grid_everything):
    _, widget = grid_everything()
    widget.run()
    model = widget.model
    widget.set_params(points_per_side=5)
    widget.run()
    assert widget.model is model and widget.cache.hits == 1 and len(widget.cache) == 1
    assert widget.results[()].n_prompts == 25


@needs_files
def test_object_aware_on_all_slices_of_a_stack(open_everything, tiny_checkpoint):
    stack = np.stack([cells_image(seed=s) for s in range(3)])
    viewer, widget = open_everything(stack)
    widget.set_method("object_aware", detector=DETECTOR_FILE)
    widget.set_model("tiny_sam", checkpoint=str(tiny_checkpoint), device="cpu")
    widget.set_params(imgsz=256, max_det=4)
    widget.set_filters(**NO_FILTERS)
    results = widget.run(all_slices=True)
    assert sorted(results) == [(0,), (1,), (2,)]
    assert all(r.n_prompts == 4 and len(r) == 4 for r in results.values())
    layer = viewer.layers[RESULT_NAME]
    assert layer.data.shape == stack.shape
    for (z,), result in results.items():
        assert np.array_equal(layer.data[z], result.labels)
    # filters re-select lazily: the shown slice now, another one when it is shown
    viewer.dims.set_current_step(0, 0)
    widget.set_filters(min_area=10**9)
    assert layer.data[0].max() == 0 and layer.data[2].max() > 0
    viewer.dims.set_current_step(0, 2)
    widget.wait()  # re-selected in a worker
    assert layer.data[2].max() == 0
    widget.set_filters(min_area=0)
    n = widget.commit(all_slices=True)
    target = viewer.layers[LABELS_NAME]
    assert n == sum(len(np.unique(r.labels)) - 1 for r in results.values())
    assert all(target.data[z].max() > 0 for z in range(3))
    target.undo()  # the whole stack commit is one step
    assert target.data.max() == 0


@needs_files
def test_fastsam_method(open_everything, shown):
    import napari_segany as nsa

    viewer, widget = open_everything(cells_image())
    widget.set_method("fastsam")
    panel = widget.model_panel
    models = [panel.model_combo.itemText(i) for i in range(panel.model_combo.count())]
    assert panel.model_combo.currentText() == "fastsam_s" and "tiny_sam" not in models
    assert not widget.detector_row.isVisibleTo(widget)
    widget.set_model("fastsam_s", checkpoint=str(FASTSAM_FILE), device="cpu")
    # a model already loaded for the chosen file is used as is (here: one with visible masks)
    widget.model = visible_fastsam(nsa.load_model("fastsam_s", checkpoint=FASTSAM_FILE, device="cpu"))
    widget.model_choice = ModelChoice("fastsam_s", str(FASTSAM_FILE), "cpu")
    widget.set_params(imgsz=256, max_det=10)
    widget.set_filters(**NO_FILTERS)
    result = widget.run()[()]
    assert result.method == "fastsam" and len(result) > 0
    assert np.array_equal(viewer.layers[RESULT_NAME].data, result.labels)


def test_cancel_shows_and_writes_nothing(open_everything, tiny_checkpoint, qtbot, shown):
    stack = np.stack([cells_image(seed=s) for s in range(4)])
    viewer, widget = open_everything(stack)
    widget.set_model("tiny_sam", checkpoint=str(tiny_checkpoint), device="cpu")
    widget.set_params(points_per_side=16, points_per_batch=4, **RANDOM_WEIGHTS)
    reports = []
    widget.run(all_slices=True, wait=False)
    widget._job.worker.yielded.connect(reports.append)
    qtbot.waitUntil(lambda: len(reports) >= 3, timeout=60_000)
    qtbot.mouseClick(widget.cancel_button, Qt.MouseButton.LeftButton)
    widget.wait()
    assert widget.results == {} and RESULT_NAME not in viewer.layers
    assert ("info", "Everything mode cancelled; nothing was written.") in shown
    assert widget.run_button.isEnabled() and not widget.cancel_button.isVisible()


def test_errors_are_notifications(open_everything, tiny_checkpoint, shown, monkeypatch, tmp_path):
    viewer, widget = open_everything(cells_image())
    widget.set_method("object_aware", detector=tmp_path / "missing.pt")
    widget.set_model("tiny_sam", checkpoint=str(tiny_checkpoint), device="cpu")
    widget.run()
    assert shown and shown[-1][0] == "error" and "missing.pt" in shown[-1][1]
    assert widget.results == {} and "nothing was written" in widget.status_label.text()
    assert widget.commit() == 0 and shown[-1] == ("info", "Nothing to commit: run everything mode first.")
    with pytest.raises(ValueError, match="not a parameter"):
        widget.set_params(no_such=1)

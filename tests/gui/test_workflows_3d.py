"""The 3D Objects dock driven as a user drives it: everything mode on every slice of a small
stack with the tiny random-weights SAM (the same labels as the engine's segment_volume),
into a new layer or an existing one as one undo step, Cancel; Link slices on spheres cut
into per-slice labels (one id per sphere, one undo step)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import Qt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflows"))
from _everything import RANDOM_WEIGHTS, cells_image  # noqa: E402
from _workflow_data import same_partition, shuffle_per_slice, spheres  # noqa: E402

from napari_segany.engine.weights import load_model  # noqa: E402
from napari_segany.engine.workflows.volume import segment_volume  # noqa: E402
from napari_segany.gui.workflows import common  # noqa: E402

pytestmark = pytest.mark.gui
PARAMS = dict(points_per_side=4, **RANDOM_WEIGHTS)


@pytest.fixture
def dock3d(make_napari_viewer, tiny_checkpoint, one_thread):
    """``dock3d(stack)``: a viewer with the stack as "nuclei" and the dock set to the tiny
    SAM's grid."""
    def make(stack):
        viewer = make_napari_viewer()
        viewer.add_image(stack, name="nuclei")
        _, widget = viewer.window.add_plugin_dock_widget("napari-segany", "3D Objects")
        widget.set_image("nuclei")
        widget.set_method("grid")
        widget.set_model("tiny_sam", checkpoint=str(tiny_checkpoint), device="cpu")
        widget.set_params(**PARAMS)
        widget.set_filters(min_size=0, max_slice_percent=100)  # what the engine returns
        return viewer, widget

    return make


@pytest.fixture
def notes(monkeypatch):
    shown = []
    for level in ("info", "error"):
        monkeypatch.setattr(common, f"show_{level}", lambda msg, lv=level: shown.append((lv, str(msg))))
    return shown


def volume(n=3):
    return np.stack([cells_image(seed=s) for s in range(n)])


def test_segment_3d_objects_into_a_new_layer(dock3d, qtbot, tiny_checkpoint):
    stack = volume()
    viewer, widget = dock3d(stack)
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "nuclei 3D objects" in viewer.layers and not widget.jobs.busy,
                    timeout=60000)
    layer = viewer.layers["nuclei 3D objects"]
    model = load_model("tiny_sam", checkpoint=str(tiny_checkpoint), device="cpu")
    expected = segment_volume(stack, model, "grid", link_iou=0.5,
                              contrast_limits=tuple(viewer.layers["nuclei"].contrast_limits), **PARAMS)
    assert np.array_equal(layer.data, expected) and layer.data.max() > 0
    assert set(np.unique(layer.data)) == set(range(int(layer.data.max()) + 1))  # ids 1..N
    assert widget.model is not None  # kept for the next run
    assert "3D objects in 'nuclei 3D objects'" in widget.status_label.text()


def test_filters_drop_small_and_slice_filling_objects(dock3d, tiny_checkpoint):
    stack = volume()
    viewer, widget = dock3d(stack)
    everything = widget.run().data.copy()
    widget.set_filters(min_size=300, max_slice_percent=20)
    kept = widget.run().data
    sizes = np.bincount(everything.ravel())
    widest = np.stack([np.bincount(p.ravel(), minlength=sizes.size) for p in everything]).max(0)
    wanted = [i for i in range(1, sizes.size) if sizes[i] >= 300 and widest[i] <= 0.2 * 96 * 128]
    assert 0 < len(wanted) < sizes.size - 1  # some objects go, some stay
    assert np.array_equal(kept > 0, np.isin(everything, wanted))
    assert same_partition(kept, np.where(np.isin(everything, wanted), everything, 0))
    assert set(np.unique(kept)) == set(range(len(wanted) + 1))  # renumbered 1..N


def test_into_an_existing_layer_keeps_its_objects_and_undoes_in_one_step(dock3d):
    viewer, widget = dock3d(volume())
    existing = np.zeros((3, 96, 128), np.uint32)
    existing[1, :5, :5] = 4
    target = viewer.add_labels(existing.copy(), name="mine")
    widget.target_picker.choose("mine")
    assert widget.run() == target
    assert (target.data[1, :5, :5] == 4).all()
    new_ids = set(np.unique(target.data)) - {0, 4}
    assert new_ids and min(new_ids) == 5  # after the largest id in use
    target.undo()
    assert np.array_equal(target.data, existing)


def test_cancel_writes_nothing(dock3d, qtbot, notes):
    viewer, widget = dock3d(volume(6))
    n_layers = len(viewer.layers)
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "slice 2/6" in widget.jobs.progress.format(), timeout=60000)
    qtbot.mouseClick(widget.jobs.cancel_button, Qt.MouseButton.LeftButton)
    widget.wait()
    assert len(viewer.layers) == n_layers
    assert ("info", "3D objects cancelled; nothing was written.") in notes


def test_link_slices_gives_one_id_per_sphere_and_undoes(make_napari_viewer, qtbot):
    truth = spheres((12, 48, 64), [(5, 14, 16), (6, 30, 44), (4, 36, 14)], [5, 7, 4])
    per_slice = shuffle_per_slice(truth)
    viewer = make_napari_viewer()
    layer = viewer.add_labels(per_slice.copy(), name="per slice")
    _, widget = viewer.window.add_plugin_dock_widget("napari-segany", "3D Objects")
    widget.link_picker.choose("per slice")
    qtbot.mouseClick(widget.link_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.status_label.text().startswith("Linked"), timeout=20000)
    assert same_partition(layer.data, truth) and set(np.unique(layer.data)) == {0, 1, 2, 3}
    layer.undo()  # one step: the per-slice ids are back
    assert np.array_equal(layer.data, per_slice)

"""The Segment Everything dock's 3D objects and feature filters, driven as a user drives it:
a (Z, Y, X) stack run with the scope "3D objects (linked)" (one id per object across slices,
as the engine's link_slices gives, committed as one undo step, one feature row per object);
every shown mask measured on the result layer's ``features`` (the engine's object_features of
each mask); a feature filter
added in the folded section hides and shows masks live (the model is not called again) and
a commit writes only the kept ones, with their rows.  Tiny SAM with random weights."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import Qt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflows"))
from _everything import cells_image  # noqa: E402
from _workflow_data import same_partition  # noqa: E402

from napari_segany.engine.workflows.features import object_features  # noqa: E402
from napari_segany.engine.workflows.slices import link_slices  # noqa: E402
from napari_segany.gui.everything.layers import RESULT_NAME  # noqa: E402
from napari_segany.gui.everything.linking import LINKED  # noqa: E402
from napari_segany.gui.shared.labels_io import LABELS_NAME  # noqa: E402

pytestmark = pytest.mark.gui


def stack(n=3):
    return np.stack([cells_image(seed=s) for s in range(n)])


def test_a_3d_stack_gives_linked_objects_committed_as_one_step(grid_everything, qtbot, shown):
    viewer, widget = grid_everything(stack())
    scope = widget.scope_combo
    assert scope.model().item(LINKED).isEnabled()  # offered for a (Z, Y, X) image
    assert not widget.link_scope.iou.isVisibleTo(widget)
    scope.setCurrentIndex(LINKED)  # the user picks "3D objects (linked)"
    widget.link_scope.iou.setValue(0.5)
    assert widget.link_scope.iou.isVisibleTo(widget)
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    widget.wait()
    results = widget.results
    assert sorted(results) == [(0,), (1,), (2,)]
    layer = viewer.layers[RESULT_NAME]
    per_slice = np.stack([results[(z,)].labels for z in range(3)])  # no filters: all masks
    expected = link_slices(per_slice, 0, 0.5)
    assert np.array_equal(layer.data, expected)
    ids = [set(np.unique(layer.data[z])) - {0} for z in range(3)]
    assert ids[0] & ids[1]  # objects continue across slices with one id
    assert "3D objects" in widget.status_label.text() and "3D objects" in widget.count_label.text()
    for z in (0, 2):  # the layer's features: the shown slice's masks, by their 3D ids
        viewer.dims.set_current_step(0, z)
        widget.wait()  # re-selected and painted in a worker
        table = layer.features
        assert (table["plane"] == z).all()
        assert len(table) == len(widget.shown[(z,)])  # every kept mask, also one covered
        assert list(table["index"]) == list(table["label"]) and ids[z] <= set(table["label"])
    before = layer.data.copy()
    widget.filter_features(area=(float(np.median(widget.features[(1,)]["area"])), None))
    for z in range(3):  # live, every slice: fewer masks, still with their 3D ids
        viewer.dims.set_current_step(0, z)
        widget.wait()  # re-selected and painted in a worker
        kept_ids = widget.view.links[(z,)][widget.view.rows[(z,)] + 1]  # the kept masks' 3D ids
        assert set(np.unique(layer.data[z])) - {0} <= set(kept_ids.tolist())
    assert (layer.data != before).any()
    assert all(r["area"] >= widget.filters.ranges()["area"][0] for r in widget.shown[(1,)].records)
    widget.filter_features()  # no feature filter: all again
    for z in range(3):
        viewer.dims.set_current_step(0, z)
        widget.wait()  # re-selected and painted in a worker
    assert np.array_equal(layer.data, expected)
    n = widget.commit()
    target = viewer.layers[LABELS_NAME]
    assert n == len(np.unique(expected)) - 1
    assert same_partition(target.data, expected)  # one id per object, on every slice
    rows = target.features  # one row per 3D object: its masks' voxels (whole), planes...
    assert sorted(rows["index"]) == sorted(set(np.unique(target.data)) - {0})
    volume = {}  # 3D id -> the areas of its masks, every slice
    for z in range(3):
        for k, area in enumerate(widget.features[(z,)]["area"]):
            key = int(widget.view.links[(z,)][k + 1])
            volume[key] = volume.get(key, 0) + int(area)
    for label in set(np.unique(layer.data)) - {0}:
        new = target.data[layer.data == label][0]
        assert rows.loc[rows["index"] == new, "volume"].item() == volume[label]
    target.undo()  # the whole 3D commit is one step
    assert target.data.max() == 0


def test_linking_is_offered_for_3d_images_only(grid_everything):
    viewer, widget = grid_everything()  # a 2D image
    assert not widget.scope_combo.model().item(LINKED).isEnabled()
    with pytest.raises(Exception, match="Z, Y, X"):
        widget.set_linking(True)
    widget.set_image(viewer.add_image(stack(2), name="z"))
    widget.set_linking(True, min_iou=0.3)
    assert widget.link_scope.wanted() == pytest.approx(0.3)
    widget.set_image("cells")  # back to 2D: the choice goes
    assert widget.link_scope.wanted() is None


def test_every_shown_mask_has_its_measures_on_the_result_layer(grid_everything):
    viewer, widget = grid_everything()
    result = widget.run()[()]
    layer, image = viewer.layers[RESULT_NAME], viewer.layers["cells"].data
    table = layer.features
    assert len(table) == len(result) and list(table["index"]) == list(range(1, len(result) + 1))
    for column in ("area", "perimeter", "solidity", "circularity", "eccentricity",
                   "mean_intensity", "max_intensity", "score", "stability"):
        assert column in table
    for k, record in enumerate(result.records):  # each mask measured whole, as if alone
        alone = object_features(record["segmentation"].astype(np.int32), image)
        row = table.iloc[k]
        assert row["area"] == record["area"] == alone["area"][0]
        for column in ("perimeter", "solidity", "eccentricity", "mean_intensity", "max_intensity"):
            # same numbers from the same function: exact up to float summation order
            assert row[column] == pytest.approx(alone[column][0], rel=1e-9)
        assert row["score"] == record["predicted_iou"]
        assert row["stability"] == record["stability_score"]


def test_a_feature_filter_hides_masks_live_and_the_commit_keeps_only_them(grid_everything,
                                                                           qtbot):
    viewer, widget = grid_everything()
    result = widget.run()[()]
    layer = viewer.layers[RESULT_NAME]
    widget.model.decode = None  # any decoder call would now fail: filters only re-select
    areas = np.sort(widget.features[()]["area"])
    threshold = float(areas[len(areas) // 2])
    section = widget.filters.features_section
    assert not section.expanded  # folded away: the dock still fits a laptop screen
    section.button.click()
    qtbot.mouseClick(widget.filters.features.add_button, Qt.MouseButton.LeftButton)
    row = widget.filters.features.rows[-1]
    row.column_combo.setCurrentText("area")
    row.min_edit.setText(f"{threshold:g}")  # typed: debounced, then shown
    widget.wait()
    kept = widget.shown[()]
    assert 0 < len(kept) < len(result)
    assert all(r["area"] >= threshold for r in kept.records)
    assert np.array_equal(layer.data, kept.labels)
    assert len(layer.features) == len(kept) and (layer.features["area"] >= threshold).all()
    row.min_edit.setText("")  # the filter off: every mask again
    widget.wait()
    assert len(widget.shown[()]) == len(result)
    widget.filter_features(area=(threshold, None))  # the same from a script
    n = widget.commit()
    target = viewer.layers[LABELS_NAME]
    assert n == len(np.unique(kept.labels)) - 1
    assert same_partition(target.data, kept.labels)
    written = target.features
    assert set(written["index"]) == set(np.unique(target.data)) - {0}
    assert (written["area"] >= threshold).all()

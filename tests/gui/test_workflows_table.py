"""The Object Table dock driven as a user drives it: measure (a worker), the table against
object_features and layer.features, row selection, live filters hiding objects through
the colormap, CSV export, and the shown plane of a stack."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt
from skimage.draw import disk, rectangle

from napari_segany.engine.workflows.features import object_features

pytestmark = pytest.mark.gui


def objects_2d():
    """Labels with a small disk, a large disk, a thin bar and a square; a noisy image."""
    labels = np.zeros((70, 90), np.int32)
    labels[disk((15, 15), 5, shape=labels.shape)] = 3
    labels[disk((40, 30), 12, shape=labels.shape)] = 7
    rr, cc = rectangle((5, 50), extent=(4, 35), shape=labels.shape)
    labels[rr, cc] = 1
    rr, cc = rectangle((45, 60), extent=(15, 15), shape=labels.shape)
    labels[rr, cc] = 12
    rng = np.random.default_rng(0)
    image = (rng.normal(100, 5, labels.shape) + 20 * labels).astype(np.float32)
    return labels, image


@pytest.fixture
def table_dock(make_napari_viewer, qtbot):
    def make(labels, image):
        viewer = make_napari_viewer()
        viewer.add_image(image, name="cells")
        viewer.add_labels(labels, name="objects")
        _, widget = viewer.window.add_plugin_dock_widget("napari-segany", "Object Table")
        widget.set_layers("objects", image="cells")
        qtbot.mouseClick(widget.measure_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: widget.table is not None and not widget.jobs.busy, timeout=20000)
        return viewer, widget

    return make


def shown(layer, ids=(1, 3, 7, 12)):
    """Whether each object is drawn (not transparent) by the layer's colormap."""
    return layer.colormap.map(np.array(ids))[:, 3] > 0


def same_columns(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=name)


def grid_column(widget, name):
    """A column as the table view shows it (sorted, filtered), as numbers."""
    model = widget.grid.model()
    c = [model.headerData(k, Qt.Orientation.Horizontal) for k in range(model.columnCount())].index(name)
    return [float(model.data(model.index(r, c))) for r in range(model.rowCount())]


def test_table_matches_object_features_and_layer_features(table_dock, qtbot):
    labels, image = objects_2d()
    viewer, widget = table_dock(labels, image)
    same_columns(widget.table, object_features(labels, image))
    features = viewer.layers["objects"].features
    np.testing.assert_array_equal(features["index"], [1, 3, 7, 12])
    np.testing.assert_array_equal(features["area"], widget.table["area"])
    assert widget.grid.model().rowCount() == 4 and widget.count_label.text() == "4 objects"
    assert grid_column(widget, "area") == list(widget.table["area"])
    header = widget.grid.horizontalHeader()
    on_area = QPoint(header.sectionViewportPosition(list(widget.table).index("area")) + 5, 5)
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=on_area)
    if header.sortIndicatorOrder() == Qt.SortOrder.AscendingOrder:  # a second click: descending
        qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=on_area)
    assert grid_column(widget, "label") == [7, 12, 1, 3]  # sorted as numbers, by area


def test_selecting_a_row_selects_the_object_and_centres_on_it(table_dock, qtbot):
    labels, image = objects_2d()
    viewer, widget = table_dock(labels, image)
    row = grid_column(widget, "label").index(7)
    rect = widget.grid.visualRect(widget.grid.model().index(row, 1))
    qtbot.mouseClick(widget.grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert viewer.layers["objects"].selected_label == 7
    np.testing.assert_allclose(viewer.scene.camera.center[-2:], (40, 30), atol=0.5)
    widget.select_object(12)  # from a script: the grid follows
    assert viewer.layers["objects"].selected_label == 12
    selected = widget.grid.selectionModel().selectedRows()
    assert [grid_column(widget, "label")[i.row()] for i in selected] == [12]


def test_filters_hide_failing_objects_live_without_repainting(table_dock, qtbot):
    labels, image = objects_2d()
    viewer, widget = table_dock(labels, image)
    layer = viewer.layers["objects"]
    own_colormap, data = layer.colormap, layer.data
    qtbot.mouseClick(widget.filters.add_button, Qt.MouseButton.LeftButton)
    row = widget.filters.rows[0]
    row.column_combo.setCurrentText("area")
    qtbot.keyClicks(row.min_edit, "100")  # as typed: debounced
    qtbot.waitUntil(lambda: widget.count_label.text().startswith("3 of 4"), timeout=5000)
    widget.wait()  # the colormap is built in a worker
    assert list(shown(layer)) == [True, False, True, True]  # the small disk (3) is hidden
    assert layer.data is data and np.array_equal(layer.data, labels)  # only the colormap changed
    assert grid_column(widget, "label") == [1, 7, 12]  # its row is hidden
    qtbot.keyClicks(row.max_edit, "300")  # the large disk goes too
    qtbot.waitUntil(lambda: widget.count_label.text().startswith("2 of 4"), timeout=5000)
    widget.wait()
    assert list(shown(layer)) == [True, False, False, True]
    widget.add_filter("circularity", 0.5, None)  # a script's filter: the bar fails it
    assert widget.count_label.text().startswith("1 of 4")
    assert list(shown(layer)) == [False, False, False, True]
    assert np.allclose(layer.colormap.map(np.array([12]))[0], own_colormap.map(np.array([12]))[0])
    qtbot.mouseClick(row.remove_button, Qt.MouseButton.LeftButton)
    widget.clear_filters()
    assert layer.colormap is own_colormap and widget.count_label.text() == "4 objects"


def test_csv_export_writes_the_rows_that_pass(table_dock, tmp_path):
    labels, image = objects_2d()
    _, widget = table_dock(labels, image)
    widget.add_filter("area", 100, None)
    path = tmp_path / "out" / "objects.csv"
    widget.csv_edit.setText(str(path))
    widget.export_button.click()
    widget.wait()
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["label"]) for r in rows] == [1, 7, 12]
    assert list(rows[0]) == list(widget.table)
    assert float(rows[1]["area"]) == widget.table["area"][2]


def test_a_stack_is_measured_on_the_shown_plane(table_dock, qtbot):
    labels, image = objects_2d()
    stack = np.stack([labels, np.roll(labels, 5, axis=1), labels * (labels != 3)])
    viewer, widget = table_dock(stack, np.stack([image] * 3))
    assert set(widget.table["plane"]) == {viewer.dims.current_step[0]}  # the shown plane
    viewer.dims.set_point(0, 2)
    qtbot.waitUntil(lambda: widget.table is not None and set(widget.table["plane"]) == {2}
                    and not widget.jobs.busy, timeout=10000)
    expected = object_features(stack, np.stack([image] * 3))
    in_plane = expected["plane"] == 2
    same_columns(widget.table, {k: v[in_plane] for k, v in expected.items()})
    np.testing.assert_array_equal(viewer.layers["objects"].features["index"], [1, 7, 12])

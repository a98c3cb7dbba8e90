"""The Segment Everything widget keeps one label image per slice, its result layer's: the
filtered results are painted straight into the layer (uint16), not kept as int32 copies."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _everything import cells_image  # noqa: E402

from napari_segany.engine.everything.masks import CompactMask  # noqa: E402
from napari_segany.engine.everything.result import EverythingResult, Record  # noqa: E402
from napari_segany.gui.everything_layers import RESULT_NAME, show_slice  # noqa: E402
from napari_segany.gui.labels_io import LABELS_NAME  # noqa: E402

pytestmark = pytest.mark.gui
RANDOM_WEIGHTS = dict(pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)


def test_result_layer_is_the_only_label_image(make_napari_viewer, tiny_checkpoint):
    viewer = make_napari_viewer()
    viewer.add_image(cells_image(), name="cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Everything")
    widget.set_method("grid")
    widget.set_model("tiny_sam", checkpoint=str(tiny_checkpoint), device="cpu")
    widget.set_params(points_per_side=4, **RANDOM_WEIGHTS)
    widget.set_filters(min_area=0, max_area_fraction=None)
    result = widget.run()[()]
    layer = viewer.layers[RESULT_NAME]
    kept = widget.shown[()]
    assert layer.data.dtype == np.uint16
    assert "labels" not in kept.__dict__ and "labels" not in result.__dict__  # nothing cached
    assert np.array_equal(layer.data, kept.paint())
    areas = sorted(r["area"] for r in result.records)
    widget.set_filters(min_area=areas[len(areas) // 2])
    kept = widget.shown[()]
    assert "labels" not in kept.__dict__ and np.array_equal(layer.data, kept.paint())
    n = widget.commit()
    target = viewer.layers[LABELS_NAME]
    labels = kept.paint()
    assert n == len(np.unique(labels)) - 1 and np.array_equal(target.data > 0, labels > 0)
    assert "labels" not in widget.shown[()].__dict__  # a commit paints a temporary image


def test_show_slice_widens_the_layer_for_more_than_65535_objects():
    from napari.layers import Labels

    shape = (260, 260)
    pixel = np.zeros((1, 1), bool)
    pixel[0, 0] = True
    packed = np.packbits(pixel, axis=-1)
    records = [Record(CompactMask(shape, (i // 260, i % 260, i // 260 + 1, i % 260 + 1), packed, 1),
                      {"area": 1}) for i in range(65_600)]
    result = EverythingResult(records, shape, "grid")
    layer = Labels(np.zeros((2, *shape), np.uint16))
    show_slice(layer, (1,), result)
    assert layer.data.dtype == np.int32
    assert layer.data[1].max() == 65_600 and layer.data[0].max() == 0
    assert np.array_equal(layer.data[1], result.labels)
    small = EverythingResult(records[:3], shape, "grid")
    show_slice(layer, (1,), small)  # the slice is cleared before painting
    assert layer.data[1].max() == 3 and np.count_nonzero(layer.data[1]) == 3

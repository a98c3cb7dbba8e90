"""The Segment Everything widget keeps one label image per slice, its result layer's: the
filtered results are painted (in a worker) and copied into the layer (uint16), not kept as
int32 copies."""
from __future__ import annotations

import numpy as np
import pytest

from napari_segany.engine.everything.masks import CompactMask
from napari_segany.engine.everything.result import EverythingResult, Record
from napari_segany.gui.everything.layers import RESULT_NAME, write_slice
from napari_segany.gui.shared.labels_io import LABELS_NAME

pytestmark = pytest.mark.gui


def test_result_layer_is_the_only_label_image(grid_everything):
    viewer, widget = grid_everything()
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


def test_write_slice_widens_the_layer_for_more_than_65535_objects():
    from napari.layers import Labels

    shape = (260, 260)
    pixel = np.zeros((1, 1), bool)
    pixel[0, 0] = True
    packed = np.packbits(pixel, axis=-1)
    records = [Record(CompactMask(shape, (i // 260, i % 260, i // 260 + 1, i % 260 + 1), packed, 1),
                      {"area": 1}) for i in range(65_600)]
    result = EverythingResult(records, shape, "grid")
    layer = Labels(np.zeros((2, *shape), np.uint16))
    write_slice(layer, (1,), result.paint())
    assert layer.data.dtype == np.int32
    assert layer.data[1].max() == 65_600 and layer.data[0].max() == 0
    assert np.array_equal(layer.data[1], result.labels)
    small = EverythingResult(records[:3], shape, "grid")
    write_slice(layer, (1,), small.paint())  # the whole slice is replaced
    assert layer.data[1].max() == 3 and np.count_nonzero(layer.data[1]) == 3

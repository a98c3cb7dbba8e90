"""Everything mode on a large slice in the Segment Everything widget, driven as a user drives
it: "Large images" set to tile above 400 px with 256-px tiles (the tiny model's input), a
440 x 440 image runs tile by tile in the worker (progress per tile, Cancel), its objects come
from several tiles and are merged into one result layer; a cancelled tiled run leaves nothing.
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _large_images import big_cells  # noqa: E402

from napari_segany.engine.tiling import predictor as tiled_predictor  # noqa: E402
from napari_segany.gui.everything.layers import RESULT_NAME  # noqa: E402
from napari_segany.gui.shared.labels_io import LABELS_NAME  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture
def large(grid_everything):
    """(viewer, widget) on a 440 x 440 image, tiny SAM grid, tiles of 256 px above 400 px."""
    viewer, widget = grid_everything(big_cells(), name="slide")
    widget.tiling.threshold_spin.setValue(400)  # what a user types in "Tile above"
    return viewer, widget


def test_large_slice_runs_tile_by_tile_into_one_result(large, shown):
    viewer, widget = large
    reports = []
    widget.run(wait=False)
    widget._job.worker.yielded.connect(reports.append)
    widget.wait()
    result = widget.results[()]
    assert "tiled: 4 tiles of 256 px, halo 32" in widget.status_label.text()
    assert any(r.message.startswith("tile 4/4") for r in reports)
    assert result.image_shape == (440, 440) and result.n_prompts == 4 * 16
    windows = {tuple(r["crop_box"]) for r in result.records}
    assert len(windows) > 1  # objects from several tiles, in image coordinates
    layer = viewer.layers[RESULT_NAME]
    assert layer.data.shape == (440, 440) and np.array_equal(layer.data, result.labels)
    assert widget.cache.hits == 0 and len(widget.cache) == 4  # tile embeddings, kept
    widget.set_params(points_per_side=5)
    widget.run()  # again: the tiles come from the cache, only the decoder runs
    assert widget.cache.hits == 4 and widget.results[()].n_prompts == 4 * 25
    assert widget.commit() > 0 and viewer.layers[LABELS_NAME].data.shape == (440, 440)
    assert not [n for n in shown if n[0] == "error"]


def test_tiling_off_runs_whole_and_bad_tiles_are_refused(large, shown):
    _, widget = large
    widget.set_tiling(enabled=False)
    assert not widget.tiling.tile_spin.isEnabled()
    result = widget.run()[()]
    assert result.n_prompts == 16 and "tiled" not in widget.status_label.text()
    widget.set_tiling(tile=128, halo=200)  # no core left: refused before any thread starts
    widget.tiling.threshold_spin.setValue(400)
    widget.run()
    assert widget._job is None and "Not started" in widget.status_label.text()
    assert shown[-1][0] == "error" and "Large images: Tiles of 128 px" in shown[-1][1]


def test_cancel_mid_tiled_run_leaves_nothing(large, monkeypatch, shown):
    viewer, widget = large
    reached, opened, calls = threading.Event(), threading.Event(), []
    real = tiled_predictor.TiledPredictor.tile_embedding

    def gated(self, row, col):  # the third tile waits until the test has pressed Cancel
        calls.append((row, col))
        if len(calls) == 3:
            reached.set()
            opened.wait(60)
        return real(self, row, col)

    monkeypatch.setattr(tiled_predictor.TiledPredictor, "tile_embedding", gated)
    widget.run(wait=False)
    try:
        assert reached.wait(60), "the run never reached its third tile"
        widget.cancel_button.click()
    finally:
        opened.set()
    widget.wait()
    assert len(calls) == 3  # stopped at the next report: no further tile
    assert widget.results == {} and RESULT_NAME not in viewer.layers
    assert widget.status_label.text().startswith("Cancelled")
    assert ("info", "Everything mode cancelled; nothing was written.") in shown

"""One job over every plane of a stack, tiled or not (``iter_segment_stack``), as the widget,
the command line and ``segment_stack`` run it; and the one method -> model map."""
from __future__ import annotations

import numpy as np
import pytest

import napari_segany as nsa
from _everything import RANDOM_WEIGHTS, cells_image
from napari_segany.engine.embeddings import EmbeddingCache
from napari_segany.engine.errors import CheckpointError, ImageError
from napari_segany.engine.everything import iter_segment_stack, methods
from napari_segany.engine.everything.stack import Plane
from napari_segany.engine.progress import run
from napari_segany.engine.tiling import TilingSettings

pytestmark = pytest.mark.usefixtures("one_thread")
GRID = dict(points_per_side=4, **RANDOM_WEIGHTS)


def test_planes_run_whole_or_tiled_by_the_tiling_rule(tiny_sam):
    small, large = cells_image((96, 128)), cells_image((300, 320), seed=1)
    tiling = TilingSettings(tile=128, halo=16, threshold=200)
    reports = []
    results = run(iter_segment_stack([small, large], 2, tiny_sam, "grid", tiling=tiling, **GRID),
                  reports.append)
    assert [r.image_shape for r in results] == [(96, 128), (300, 320)]
    assert any(r.message.startswith("plane 2/2: tile 1/") for r in reports)
    assert not any(r.message.startswith("plane 1/2: tile") for r in reports)
    whole = nsa.segment_everything_tiled(large, tiny_sam, "grid", tile=128, halo=16, **GRID)
    assert [r["bbox"] for r in results[1].records] == [r["bbox"] for r in whole.records]


def test_a_cache_spares_the_encoder_on_the_second_run(tiny_sam):
    cache, image = EmbeddingCache(), cells_image()
    first = run(iter_segment_stack([image], 1, tiny_sam, "grid", cache=cache, **GRID))
    encodes = []
    real = tiny_sam.encode
    tiny_sam.encode = lambda x: encodes.append(1) or real(x)
    try:
        again = run(iter_segment_stack([Plane(image)], 1, tiny_sam, "grid", cache=cache, **GRID))
    finally:
        del tiny_sam.encode
    assert not encodes and len(again[0]) == len(first[0])


def test_errors_name_the_plane(tiny_sam):
    bad = cells_image()
    bad[3, 4] = np.nan
    with pytest.raises(ImageError, match="plane 2/2: .*NaN"):
        run(iter_segment_stack([cells_image(), bad], 2, tiny_sam, "grid", **GRID))
    with pytest.raises(ImageError, match="'cells', slice \\[1\\]: .*NaN"):
        plane = Plane(bad, name="'cells', slice [1]")
        run(iter_segment_stack([plane], 1, tiny_sam, "grid", **GRID))


def test_the_method_map_is_the_registry_s(tiny_sam):
    assert methods.models_for("fastsam") == nsa.list_models("instance")
    assert methods.models_for("grid") == methods.models_for("object_aware") == \
        nsa.list_models("promptable")
    with pytest.raises(ValueError, match="--method fastsam needs one of fastsam_s"):
        methods.check_model_name("fastsam", "mobile_sam")
    with pytest.raises(CheckpointError, match="needs a FastSAM network"):
        methods.check_network("fastsam", tiny_sam)
    with pytest.raises(ValueError, match="Unknown method"):
        methods.check_method("watershed")

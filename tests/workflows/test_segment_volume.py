"""segment_volume: everything mode on every slice, then linked (tiny random-weights SAM)."""
from __future__ import annotations

import numpy as np
import pytest
from _everything import cells_image, load_tiny, visible_fastsam
from _paths import PARITY

import napari_segany as nsa
from napari_segany.engine.errors import Cancelled, ImageError
from napari_segany.engine.progress import run

FASTSAM_FILE = PARITY / "fastsam_s" / "FastSAM-s.synth-seed0.pt"  # as tests/_everything.py,
DETECTOR_FILE = PARITY / "mobilesamv2_objectaware" / "ObjectAwareModel.synth-seed0.pt"  # $SHARED
PARAMS = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)


@pytest.fixture(scope="module")
def tiny():
    return load_tiny()


@pytest.fixture(scope="module")
def volume():
    return np.stack([cells_image(seed=s) for s in range(3)])


def test_volume_is_the_linked_slices(tiny, volume, one_thread):
    reports = []
    labels = run(nsa.iter_segment_volume(volume, tiny, "grid", link_iou=0.5,
                                         contrast_limits=(50, 300), **PARAMS), reports.append)
    per_slice = np.stack([nsa.segment_everything(plane, tiny, "grid", contrast_limits=(50, 300),
                                                 **PARAMS).labels for plane in volume])
    assert labels.shape == volume.shape and labels.dtype == np.int32 and labels.any()
    assert np.array_equal(labels, nsa.link_slices(per_slice, min_iou=0.5))
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {r.total for r in reports} == {3000} and "slice 3/3" in reports[-2].message
    assert reports[-1].message.endswith("objects in 3 slices")


def test_cancel_between_slices_returns_nothing(tiny, volume, one_thread):
    seen = []

    def cancel_on_slice_two(report):
        seen.append(report)
        return "slice 2/3" not in report.message

    with pytest.raises(Cancelled):
        nsa.segment_volume(volume, tiny, callback=cancel_on_slice_two, **PARAMS)
    assert "slice 2/3" in seen[-1].message and not any("slice 3/3" in r.message for r in seen)


def test_closing_the_job_stops_it(tiny, volume, one_thread):
    job = nsa.iter_segment_volume(volume, tiny, **PARAMS)
    next(job)
    job.close()  # what a napari worker's quit() does
    with pytest.raises(StopIteration):
        next(job)


def test_bad_volumes_and_parameters(tiny):
    with pytest.raises(ImageError, match="volume"):
        nsa.segment_volume(np.zeros((8, 8)), tiny)
    with pytest.raises(ValueError, match="link_iou"):
        nsa.segment_volume(np.zeros((2, 8, 8)), tiny, link_iou=0)


@pytest.mark.skipif(not FASTSAM_FILE.exists(), reason="../shared/parity is absent")
def test_fastsam_and_object_aware_methods(tiny, volume, one_thread):
    fastsam = visible_fastsam(nsa.load_model("fastsam_s", checkpoint=FASTSAM_FILE, device="cpu"))
    labels = nsa.segment_volume(volume[:2], fastsam, "fastsam", imgsz=256)
    per_slice = np.stack([nsa.segment_everything(p, fastsam, "fastsam", imgsz=256).labels
                          for p in volume[:2]])
    assert labels.any() and np.array_equal(labels, nsa.link_slices(per_slice))
    boxes = nsa.segment_volume(volume[:2], tiny, "object_aware", detector=DETECTOR_FILE,
                               imgsz=256, max_det=3)  # a path: the detector is loaded once
    assert boxes.shape == volume[:2].shape and boxes.any()

"""Everything mode mechanics on synthesized weights: the three methods, prompts decoded,
records, labels, cancel, post-filters, stacks.  (Parity of the grid: test_everything_grid_parity.)"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from _everything import (
    DETECTOR_FILE, FASTSAM_FILE, TINY_EFFICIENT_SAM, cells_image, load_tiny, visible_fastsam,
)

import napari_segany as nsa
from napari_segany.engine.errors import Cancelled
from napari_segany.engine.everything import iter_segment_everything
from napari_segany.engine.everything.masks import CompactMask
from napari_segany.engine.everything.presets import NO_FILTERS, FilterSettings
from napari_segany.engine.everything.result import EverythingResult, Record
from napari_segany.engine.everything.stack import segment_stack
from napari_segany.engine.progress import run

needs_files = pytest.mark.skipif(not DETECTOR_FILE.exists(), reason="../shared/parity is absent")
NO_RUN_FILTERS = dict(pred_iou_thresh=0.0, stability_score_thresh=0.0)  # random weights score low


@pytest.fixture(scope="module")
def tiny():
    return load_tiny()


@pytest.fixture(scope="module")
def detector():
    if not DETECTOR_FILE.exists():
        pytest.skip("../shared/parity is absent")
    return nsa.load_model("mobilesamv2_objectaware", checkpoint=DETECTOR_FILE, device="cpu")


@pytest.fixture(scope="module")
def fastsam():
    if not FASTSAM_FILE.exists():
        pytest.skip("../shared/parity is absent")
    return visible_fastsam(nsa.load_model("fastsam_s", checkpoint=FASTSAM_FILE, device="cpu"))


@pytest.fixture(scope="module")
def image():
    return cells_image()


def check_records_and_labels(result, shape):
    """Common contract: SAM-style records, labels (H, W) int32 painted smallest on top."""
    assert result.image_shape == shape
    labels = result.labels
    assert labels.shape == shape and labels.dtype == np.int32
    for i, record in enumerate(result.records):
        mask = record["segmentation"]
        assert mask.shape == shape and mask.dtype == bool and mask.sum() == record["area"]
        x, y, w, h = record["bbox"]
        rows, cols = np.nonzero(mask)
        assert (x, y, x + w, y + h) == (cols.min(), rows.min(), cols.max(), rows.max())
        assert set(record) >= {"segmentation", "area", "bbox", "predicted_iou", "crop_box"}
    for i in np.argsort([r["area"] for r in result.records])[:1]:  # the smallest is wholly visible
        assert (labels[result.records[i]["segmentation"]] == i + 1).all()
    assert set(np.unique(labels)) <= set(range(len(result) + 1))


# ----------------------------------------------------------------------------- grid


def test_grid_decodes_every_point_and_returns_records(tiny, image):
    result = nsa.segment_everything(image, tiny, "grid", points_per_side=6, **NO_RUN_FILTERS)
    assert result.method == "grid" and result.n_prompts == 36
    assert len(result) > 0
    check_records_and_labels(result, image.shape)
    points = np.array([r["point_coords"][0] for r in result.records])
    assert points.min() > 0 and points[:, 0].max() < image.shape[1] and points[:, 1].max() < image.shape[0]


def test_grid_crops_add_prompts_and_keep_masks_compact(tiny):
    big = cells_image((600, 700))
    result = nsa.segment_everything(big, tiny, "grid", points_per_side=4, crop_n_layers=1,
                                    **NO_RUN_FILTERS)
    assert result.n_prompts == 16 + 4 * 16  # the whole image, then 2 x 2 crops
    check_records_and_labels(result, big.shape)
    full_bool = len(result) * big.size  # bytes of full-size bool masks (SAM's binary_mask mode)
    assert sum(r.mask.nbytes for r in result.records) <= full_bool / 8 + len(result) * big.shape[0]


def test_grid_results_do_not_depend_on_decode_workers(tiny, image):
    kw = dict(points_per_side=6, points_per_batch=5, box_nms_thresh=1.0, **NO_RUN_FILTERS)
    threads = torch.get_num_threads()
    one = nsa.segment_everything(image, tiny, "grid", decode_workers=1, **kw)
    three = nsa.segment_everything(image, tiny, "grid", decode_workers=3, **kw)
    assert len(one) == len(three) == 108  # 36 points x 3 masks, nothing filtered
    for a, b in zip(one.records, three.records):
        assert a["point_coords"] == b["point_coords"] and a["bbox"] == b["bbox"]
        assert a["predicted_iou"] == pytest.approx(b["predicted_iou"], abs=1e-5)
    assert torch.get_num_threads() == threads  # the workers' one-thread setting stays theirs


def test_upsampling_chunks_shrink_on_large_images():
    from napari_segany.engine.everything.upsample import fit_chunk

    assert fit_chunk(16, (1024, 1024)) == 16
    assert fit_chunk(16, (4096, 4096)) == 4
    assert fit_chunk(16, (20000, 20000)) == 1


def test_ordered_map_keeps_order_raises_and_stops_early():
    import threading
    import time

    from napari_segany.engine.everything.parallel import ordered_map

    def slow_square(x):
        time.sleep(0.01 * (5 - x % 5))  # later items finish first
        return x * x

    assert list(ordered_map(slow_square, range(12), workers=3)) == [x * x for x in range(12)]
    started = []

    def record(x):
        started.append(threading.current_thread().name)
        return x

    it = ordered_map(record, range(100), workers=2)
    assert next(it) == 0
    it.close()
    assert len(started) <= 4 and all(name.startswith("segany-decode") for name in started)

    def fail(x):
        raise ValueError(f"bad {x}")

    with pytest.raises(ValueError, match="bad 0"):
        list(ordered_map(fail, range(3), workers=2))


def test_one_batch_runs_in_the_callers_thread_with_its_threads():
    """A pool thread computes on one intra-op thread; a lone batch (a small grid, a few
    boxes) would then leave the other cores idle."""
    import threading

    from napari_segany.engine.everything.parallel import ordered_map

    def where(_):
        return threading.current_thread().name, torch.get_num_threads()

    caller = threading.current_thread().name, torch.get_num_threads()
    assert list(ordered_map(where, range(1), workers=2)) == [caller]
    names = {name for name, _ in ordered_map(where, range(3), workers=8)}
    assert len(names) <= 3 and all(name.startswith("segany-decode") for name in names)


def test_grid_run_filters_are_applied_during_the_run(tiny, image):
    loose = nsa.segment_everything(image, tiny, "grid", points_per_side=4, **NO_RUN_FILTERS)
    strict = nsa.segment_everything(image, tiny, "grid", points_per_side=4, pred_iou_thresh=1.5)
    assert len(loose) > 0 and len(strict) == 0 and strict.labels.max() == 0


# ----------------------------------------------------------------------------- object-aware


@needs_files
def test_object_aware_decodes_one_box_prompt_per_detection(tiny, detector, image):
    from napari_segany.engine.detection import detect_objects
    from napari_segany.engine.images import to_uint8_rgb

    boxes, _ = detect_objects(to_uint8_rgb(image), detector, imgsz=256, max_det=7)
    result = nsa.segment_everything(image, tiny, "object_aware", detector=detector, imgsz=256,
                                    max_det=7)
    assert result.n_prompts == len(boxes) == 7
    assert len(result) == 7  # no filter by default (MobileSAMv2)
    np.testing.assert_allclose([r["box"] for r in result.records], boxes, atol=1e-4)
    check_records_and_labels(result, image.shape)


@needs_files
def test_object_aware_batches_give_the_same_masks(tiny, detector, image):
    kw = dict(detector=detector, imgsz=256, max_det=7)
    one = nsa.segment_everything(image, tiny, "object_aware", points_per_batch=320, **kw)
    reports = []
    small = run(iter_segment_everything(image, tiny, "object_aware", points_per_batch=2, **kw),
                reports.append)
    assert len([r for r in reports if "decoding" in r.message]) == 4  # ceil(7 / 2) + the last
    for a, b in zip(one.records, small.records):
        assert a["area"] == b["area"] and a["predicted_iou"] == pytest.approx(b["predicted_iou"], abs=1e-5)


@needs_files
def test_object_aware_optional_filters(tiny, detector, image):
    kw = dict(detector=detector, imgsz=256, max_det=7)
    assert len(nsa.segment_everything(image, tiny, "object_aware", pred_iou_thresh=1.5, **kw)) == 0
    dedup = nsa.segment_everything(image, tiny, "object_aware", box_nms_thresh=0.0, **kw)
    assert 1 <= len(dedup) < 7  # IoU > 0 suppresses every overlapping box


@needs_files
def test_object_aware_with_another_family_and_detector_path(detector, image):
    efficient = load_tiny(TINY_EFFICIENT_SAM)
    result = nsa.segment_everything(image, efficient, "object_aware", detector=str(DETECTOR_FILE),
                                    imgsz=256, max_det=3)
    assert result.n_prompts == 3 and len(result) == 3
    check_records_and_labels(result, image.shape)


def test_object_aware_without_detector_says_what_to_pass(tiny, image):
    with pytest.raises(ValueError, match="needs detector="):
        nsa.segment_everything(image, tiny, "object_aware")


# ----------------------------------------------------------------------------- fastsam


@needs_files
def test_fastsam_records_are_its_masks(fastsam, image):
    from napari_segany.engine.detection import fastsam_everything
    from napari_segany.engine.images import to_uint8_rgb

    found = fastsam_everything(to_uint8_rgb(image), fastsam, imgsz=256, max_det=20)
    result = nsa.segment_everything(image, fastsam, "fastsam", imgsz=256, max_det=20)
    nonempty = [i for i in range(len(found)) if found.areas[i] > 0]
    assert result.method == "fastsam" and result.n_prompts == 0
    assert len(result) == len(nonempty) > 0
    for record, i in zip(result.records, nonempty):
        assert record["predicted_iou"] == pytest.approx(float(found.scores[i]))
        assert record["box"] == pytest.approx(found.boxes[i].tolist())
        assert np.array_equal(record["segmentation"], found.mask(i))
        assert "stability_score" not in record
    check_records_and_labels(result, image.shape)


@needs_files
def test_fastsam_checks_its_model_and_parameters(tiny, fastsam, image):
    with pytest.raises(ValueError, match="needs a FastSAM network"):
        nsa.segment_everything(image, tiny, "fastsam")
    with pytest.raises(ValueError, match="Unknown fastsam parameters"):
        nsa.segment_everything(image, fastsam, "fastsam", points_per_side=8)


# ----------------------------------------------------------------------------- cancel


def _cancel_at(n):
    seen = []

    def callback(report):
        seen.append(report)
        return len(seen) < n

    return callback, seen


@pytest.mark.parametrize("method", ["grid", "object_aware", "fastsam"])
def test_cancel_between_batches_returns_nothing(method, tiny, image, request):
    kw = dict(points_per_side=8, points_per_batch=8, **NO_RUN_FILTERS)
    model = tiny
    if method == "object_aware":
        kw = dict(detector=request.getfixturevalue("detector"), imgsz=256, max_det=6, points_per_batch=2)
    elif method == "fastsam":
        model, kw = request.getfixturevalue("fastsam"), dict(imgsz=256)
    callback, seen = _cancel_at(2)
    with pytest.raises(Cancelled):
        nsa.segment_everything(image, model, method, callback=callback, **kw)
    assert len(seen) == 2


def test_progress_reaches_its_total(tiny, image):
    reports = []
    nsa.segment_everything(image, tiny, "grid", points_per_side=4, points_per_batch=4,
                           callback=reports.append, **NO_RUN_FILTERS)
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(reports) >= 5


def test_progress_counts_decoder_batches(tiny, image):
    """Issue 14 item 6: the bar moves during decoding and says "k/N batches done"."""
    reports = []
    nsa.segment_everything(image, tiny, "grid", points_per_side=8, points_per_batch=16,
                           callback=reports.append, **NO_RUN_FILTERS)
    decoding = [r for r in reports if r.message.startswith("decoding:")]
    assert [r.message for r in decoding[-4:]] == [f"decoding: {k}/4 batches done" for k in range(1, 5)]
    assert len({r.fraction for r in decoding}) == 5  # 0/4 .. 4/4: a step per batch


def test_cancel_event_stops_inside_a_batch(tiny, image):
    """A cancel event set before the only decoder batch (64 prompts) stops it after a step of 8."""
    import threading

    cancel, reports = threading.Event(), []
    job = iter_segment_everything(image, tiny, "grid", cancel=cancel, points_per_side=8,
                                  points_per_batch=64, **NO_RUN_FILTERS)
    with pytest.raises(Cancelled):
        for report in job:
            reports.append(report.message)
            if report.message == "decoding: 0/1 batches done":
                cancel.set()
    assert reports[-1] == "decoding: 0/1 batches done"  # no batch finished


# ----------------------------------------------------------------------------- filters


def _square(y0, x0, side, shape=(40, 40)):
    mask = np.zeros(shape, bool)
    mask[y0:y0 + side, x0:x0 + side] = True
    return mask


def _result(masks, scores, stabilities=None):
    records = []
    for i, (mask, score) in enumerate(zip(masks, scores)):
        compact = CompactMask.from_dense(mask)
        fields = {"area": compact.area, "bbox": [0, 0, 0, 0], "predicted_iou": score}
        if stabilities is not None:
            fields["stability_score"] = stabilities[i]
        records.append(Record(compact, fields))
    return EverythingResult(records, masks[0].shape, "grid")


def test_filters_select_without_recomputing():
    big, part, speck, other = _square(0, 0, 30), _square(5, 5, 10), _square(35, 35, 2), _square(30, 0, 8)
    result = _result([big, part, speck, other], [0.9, 0.8, 0.99, 0.5], [0.97, 0.9, 0.99, 0.96])
    assert len(result.filter()) == 4
    assert [r["area"] for r in result.filter(min_area=5).records] == [900, 100, 64]
    assert [r["area"] for r in result.filter(max_area=200).records] == [100, 4, 64]
    assert [r["area"] for r in result.filter(min_score=0.85).records] == [900, 4]
    assert [r["area"] for r in result.filter(min_stability=0.95).records] == [900, 4, 64]
    assert [r["area"] for r in result.filter(max_contained=0.9).records] == [900, 4, 64]
    labels = result.labels
    assert labels[10, 10] == 2 and labels[1, 1] == 1  # the part is painted on top of the whole
    assert len(result) == 4  # the original keeps everything


def test_filter_settings_microscopy_defaults():
    background, cell, speck = _square(0, 0, 40), _square(5, 5, 10), _square(30, 30, 3)
    result = _result([background, cell, speck], [0.9, 0.9, 0.9])
    assert [r["area"] for r in FilterSettings().apply(result).records] == [100]
    assert len(NO_FILTERS.apply(result)) == 3
    parts_dropped = FilterSettings(min_area=0, max_area_fraction=None, max_contained=0.9)
    assert [r["area"] for r in parts_dropped.apply(result).records] == [1600]


def test_fastsam_records_pass_the_stability_filter():
    result = _result([_square(0, 0, 5)], [0.5])  # no stability_score key, as FastSAM
    assert len(result.filter(min_stability=0.99)) == 1


# ----------------------------------------------------------------------------- stacks


def test_stack_runs_every_plane_with_one_progress_bar(tiny):
    stack = np.stack([cells_image(seed=s) for s in range(3)])
    reports = []
    results = segment_stack(stack, tiny, "grid", callback=reports.append, points_per_side=4,
                            **NO_RUN_FILTERS)
    assert len(results) == 3 and all(r.image_shape == stack.shape[1:] for r in results)
    assert {r.total for r in reports} == {3000} and reports[-1].step == 3000
    assert "plane 3/3" in reports[-1].message
    single = nsa.segment_everything(stack[1], tiny, "grid", points_per_side=4, **NO_RUN_FILTERS)
    assert np.array_equal(results[1].labels, single.labels)


def test_stack_cancel_raises_and_returns_nothing(tiny):
    stack = np.stack([cells_image(seed=s) for s in range(3)])
    callback, _ = _cancel_at(4)
    with pytest.raises(Cancelled):
        segment_stack(stack, tiny, "grid", callback=callback, points_per_side=4, **NO_RUN_FILTERS)


def test_methods_literal_of_the_cli_matches_the_engine():
    from napari_segany.cli import everything_cmd
    from napari_segany.engine.everything import METHODS

    assert everything_cmd.METHODS == METHODS
    d = FilterSettings()
    assert (everything_cmd.MIN_AREA, everything_cmd.MAX_AREA_FRACTION) == (d.min_area, d.max_area_fraction)


@pytest.fixture(autouse=True, scope="module")
def _seed():
    torch.manual_seed(0)

"""No public job changes torch's process-wide settings for other work (issue 17, item 5).

Every public job runs with tiny models; afterwards the calling thread *and a thread started
then* must see the intra-op thread count they saw before (2), and the default dtype, grad
mode, inference mode, interop threads, determinism and matmul precision must be unchanged.
The everything-mode decoder runs its batches on pool threads of one intra-op thread each:
before ``torch_state.limit_this_thread`` those threads lowered the count every later thread
inherits (a napari worker then embedded at half speed).
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import napari_segany as nsa
from _everything import RANDOM_WEIGHTS, cells_image, load_random_yolo
from _sam2_tiny import load_tiny_sam2
from napari_segany.engine import torch_state
from napari_segany.engine.embeddings import encode_blocking
from napari_segany.engine.images import to_uint8_rgb

GRID = dict(points_per_side=4, points_per_batch=4, **RANDOM_WEIGHTS)  # 4 batches: the pool runs


@pytest.fixture(scope="module")
def detector():
    return load_random_yolo("mobilesamv2_objectaware")


@pytest.fixture(scope="module")
def tiny_sam2():
    return load_tiny_sam2()


def _embed(tiny_sam, image):
    nsa.Predictor(tiny_sam).set_image(image)
    encode_blocking(nsa.Predictor(tiny_sam), to_uint8_rgb(image))  # the encoder in a helper thread


def _predict(tiny_sam, image):
    predictor = nsa.Predictor(tiny_sam)
    predictor.set_image(image)
    predictor.predict(point_coords=[[40, 30]], point_labels=[1])


def _propagate(tiny_sam, image):
    stack = np.stack([image] * 3)
    seed = np.zeros(image.shape, bool)
    seed[20:40, 20:40] = True
    rules = nsa.StopRules(min_score=None, max_area_ratio=None)
    nsa.propagate(stack, seed, 1, tiny_sam, rules=rules)


def _tiled_predictor(tiny_sam, image):
    large = np.tile(image, (3, 3))
    tiled = nsa.TiledPredictor(tiny_sam, tile=128, halo=16)
    tiled.set_image(large)
    tiled.predict_crops(point_coords=[[150, 140]], point_labels=[1])


JOBS = {
    "embed": _embed,
    "predict": _predict,
    "everything grid": lambda m, im: nsa.segment_everything(im, m, "grid", **GRID),
    "everything stack": lambda m, im: nsa.segment_stack(np.stack([im, im]), m, "grid", **GRID),
    "propagate": _propagate,
    "tiled predictor": _tiled_predictor,
    "tiled everything": lambda m, im: nsa.segment_everything_tiled(
        np.tile(im, (2, 2)), m, "grid", tile=128, halo=16, **GRID),
}


def _video(tiny_sam2, image):
    predictor = nsa.VideoPredictor(tiny_sam2, ram_frames=1)  # spills: the spill store runs too
    state = predictor.init_state(np.stack([image] * 4))
    predictor.add_new_points_or_box(state, 1, 1, points=[[40, 30]], labels=[1])
    predictor.add_new_mask(state, 1, 2, image > image.mean())
    predictor.propagate(state, both_directions=True)
    state.close()


def _check_unchanged(job):
    torch.set_num_threads(2)
    before = torch_state.snapshot()
    assert before.num_threads == before.new_thread_num_threads == 2
    job()
    assert torch_state.snapshot() == before


@pytest.mark.parametrize("name", list(JOBS))
def test_sam_jobs_leave_torch_settings_alone(name, tiny_sam):
    image = cells_image()
    _check_unchanged(lambda: JOBS[name](tiny_sam, image))


@pytest.mark.parametrize("name", list(JOBS))
def test_sam2_jobs_leave_torch_settings_alone(name, tiny_sam2):
    image = cells_image()
    _check_unchanged(lambda: JOBS[name](tiny_sam2, image))


def _memory(tiny_sam2, image):
    seed = np.zeros(image.shape, np.uint8)
    seed[20:40, 20:40], seed[50:70, 60:90] = 1, 2
    result = nsa.propagate_memory(np.stack([image] * 3), seed, 1, tiny_sam2, ram_frames=1)
    result.session.add_points(2, 1, points=[[30, 30]], labels=[1])
    result.session.propagate(direction="forward")
    result.session.close()


def test_sam2_video_jobs_leave_torch_settings_alone(tiny_sam2, detector):
    image = cells_image()
    _check_unchanged(lambda: _video(tiny_sam2, image))
    _check_unchanged(lambda: _memory(tiny_sam2, image))
    _check_unchanged(lambda: nsa.segment_everything(
        image, tiny_sam2, "object_aware", detector=detector, points_per_batch=2, conf=0.0,
        max_det=8))


def test_object_aware_and_fastsam_leave_torch_settings_alone(tiny_sam, detector, random_fastsam):
    image = cells_image()
    _check_unchanged(lambda: nsa.segment_everything(
        image, tiny_sam, "object_aware", detector=detector, points_per_batch=2, conf=0.0,
        max_det=8))
    _check_unchanged(lambda: nsa.segment_everything(image, random_fastsam, "fastsam", conf=0.0))


def test_pool_threads_get_one_thread_and_the_caller_keeps_its_own():
    from napari_segany.engine.everything.parallel import ordered_map

    torch.set_num_threads(2)
    seen = list(ordered_map(lambda _: (threading.current_thread().name, torch.get_num_threads()),
                            range(4), workers=2))
    assert all(name.startswith("segany-decode") and n == 1 for name, n in seen)
    assert torch.get_num_threads() == 2 and torch_state.new_thread_num_threads() == 2


def test_the_fallback_restores_the_process_wide_count(monkeypatch):
    """Builds of torch where the per-thread setters are not found: set, then restore."""
    monkeypatch.setattr(torch_state, "_native_setters", lambda: None)
    torch.set_num_threads(2)
    seen = []
    thread = threading.Thread(target=lambda: (torch_state.limit_this_thread(1),
                                              seen.append(torch.get_num_threads())))
    thread.start()
    thread.join()
    assert seen == [1]
    assert torch.get_num_threads() == 2 and torch_state.new_thread_num_threads() == 2


def test_a_lent_thread_gets_its_count_back():
    """``threads_of_this_thread``: the decode worker's count inside the block only, so the
    napari pool thread runs its next job (an embedding) with all of torch's threads."""
    before, seen = torch_state.snapshot(), []

    def job():
        own = torch.get_num_threads()
        with torch_state.threads_of_this_thread(1):
            seen.append(torch.get_num_threads())
        seen.append(torch.get_num_threads() == own)

    thread = threading.Thread(target=job)
    thread.start()
    thread.join()
    assert seen == [1, True]
    assert torch_state.snapshot() == before

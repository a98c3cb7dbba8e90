"""SAM 2 memory propagation of a label slice (engine/propagation/memory.py) with the tiny
random SAM 2: axes, seeds, progress and cancel, the label writes (one undo step), corrections
and another propagation.  Masks are noise-like: mechanics only; the official semantics of
the tracking are tested through VideoPredictor (tests/models/test_sam2_video.py)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import napari_segany as nsa
from _sam2_tiny import load_tiny_sam2
from napari_segany.engine.errors import Cancelled, CheckpointError, PromptError
from napari_segany.engine.progress import run
from napari_segany.engine.propagation.result import SEED
from napari_segany.engine.video import frame_labels

pytestmark = pytest.mark.usefixtures("one_thread")
T, Z, H, W = 2, 6, 40, 56


@pytest.fixture(scope="module")
def model():
    return load_tiny_sam2()


@pytest.fixture(scope="module")
def volume():
    return np.random.default_rng(0).integers(0, 4000, (T, Z, H, W), dtype=np.uint16)


@pytest.fixture(scope="module")
def seed():
    plane = np.zeros((H, W), np.uint16)
    plane[5:20, 5:25] = 3
    plane[22:35, 30:50] = 7
    return plane


class ReadOnce:
    """A (T, Z, Y, X) array that counts the planes read and refuses to be read whole."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, 0

    def __getitem__(self, where):
        self.reads += 1
        assert len(where) == 2, "only single planes are read"
        return self.data[where]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole volume was read")


def test_every_object_of_the_slice_walks_the_chosen_axis(model, volume, seed):
    lazy = ReadOnce(volume)
    steps = []
    result = run(nsa.iter_propagate_memory(lazy, seed, (1, 2), model, axis=1), steps.append)
    assert result.obj_ids == [3, 7] and result.frames == list(range(Z))
    assert result.stops == {"forward": "end", "backward": "end"}
    assert [p.step for p in steps] == list(range(Z + 2)) and steps[-1].total == Z + 1
    assert (result.axis, result.position, result.shape) == (1, (1, 2), (H, W))
    assert result.slice_position(4) == (1, 4)
    assert all(report.status == SEED for report in (result.tracks[3].reports[0],
                                                     result.tracks[7].reports[0]))
    overlap = result.tracks[3].to_volume() & result.tracks[7].to_volume()
    assert not overlap.any()  # one id per pixel
    assert lazy.reads < 4 * Z  # frames read one at a time, a few times each (features LRU)


def test_the_result_is_what_the_video_predictor_gives(model, volume, seed):
    stack = volume[0]  # (Z, Y, X): the frames are the volume itself
    result = nsa.propagate_memory(stack, seed, 2, model, direction="forward", stop_at=(0, 4))
    assert result.frames == [2, 3, 4] and result.stops == {"forward": "range"}
    video = nsa.VideoPredictor(model)
    state = video.init_state(stack)
    for obj_id in (3, 7):
        video.add_new_mask(state, 2, obj_id, seed == obj_id)
    for frame, ids, logits in video.propagate_in_video(state, 2, 2):
        np.testing.assert_array_equal(result.labels_on(frame), frame_labels(logits, ids))


def test_label_writes_preserve_others_replace_the_tracked_and_skip_the_seed(model, volume, seed):
    result = nsa.propagate_memory(volume[0], seed, 2, model, stop_at=(1, 3))
    labels = np.zeros((Z, H, W), np.uint16)
    labels[2] = seed
    labels[3, :, :4] = 9  # another object: stays
    labels[3, -3:, -3:] = 7  # the tracked object's old pixels: replaced
    coords, values = result.label_changes(labels)
    assert len(coords) == 3 and values.dtype == labels.dtype
    assert set(np.unique(coords[0])) <= {1, 3}  # the visited frames but the seed
    expected = labels.copy()
    for frame in (1, 3):
        new = result.labels_on(frame, labels.dtype)
        plane = expected[frame]
        plane[np.isin(plane, [3, 7])] = 0
        free = plane == 0
        plane[free & (new > 0)] = new[free & (new > 0)]
    written = labels.copy()
    changed = result.write_into(written)
    np.testing.assert_array_equal(written, expected)
    assert changed == int((written != labels).sum()) and (written[3, :, :4] == 9).all()
    again = written.copy()
    assert result.write_into(again) == 0  # idempotent: nothing left to change
    result.write_into(written, include_seed=True, preserve=False)
    np.testing.assert_array_equal(written[2], result.labels_on(2, np.uint16))


def test_a_correction_then_another_propagation(model, volume, seed):
    session = nsa.MemorySession(volume[0], model, index=2)
    assert session.seed({3: seed == 3}) == [3]
    first = session.propagate(direction="forward")
    corrected = session.add_points(4, 3, points=[[10, 10], [40, 30]], labels=[1, 0])
    assert corrected.shape == (H, W)
    again = session.propagate(direction="both")
    assert again.frames == list(range(Z)) and first.frames == list(range(2, Z))
    report = {r.index: r for r in again.tracks[3].reports}[4]
    assert report.status != SEED
    np.testing.assert_array_equal(again.labels_on(4), np.where(corrected == 3, 3, 0))
    assert 4 in session.state.bank.tracks[3].cond
    session.add_mask(0, 5, seed == 7)  # a new object, later
    assert session.propagate(direction="forward", start=0, stop_at=(0, 1)).obj_ids == [3, 5]
    session.close()


def test_cancel_between_frames(model, volume, seed):
    with pytest.raises(Cancelled):
        nsa.propagate_memory(volume[0], seed, 2, model, callback=lambda p: p.step < 2)
    cancel = threading.Event()
    cancel.set()
    job = nsa.iter_propagate_memory(volume[0], seed, 2, model, cancel=cancel)
    with pytest.raises(Cancelled):
        run(job)


def test_input_errors(model, volume, seed, tiny_sam):
    from napari_segany.engine.propagation import is_memory_model

    assert is_memory_model(model) and not is_memory_model(tiny_sam)  # what the GUI offers
    with pytest.raises(CheckpointError, match="SAM 2"):
        nsa.MemorySession(volume[0], tiny_sam)
    session = nsa.MemorySession(volume[0], model, index=2)
    with pytest.raises(PromptError, match="Seed"):
        session.iter_propagate()
    with pytest.raises(PromptError, match="no object"):
        session.seed(np.zeros((H, W), np.uint8))
    with pytest.raises(PromptError, match="shape"):
        session.seed(np.ones((H + 1, W), bool))
    with pytest.raises(PromptError, match="label slice"):
        session.seed(np.ones((H, W), np.float32))
    assert session.seed(seed > 0) == [1]
    with pytest.raises(ValueError, match="direction"):
        session.iter_propagate("sideways")
    with pytest.raises(ValueError, match="range"):
        session.iter_propagate(stop_at=(3, 5))
    with pytest.raises(ValueError, match="axis"):
        nsa.MemorySession(volume, model, axis=2, index=(0, 0))
    with pytest.raises(ValueError, match="leading axes"):
        nsa.MemorySession(volume, model, axis=0, index=1)

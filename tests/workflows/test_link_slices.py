"""link_slices: per-slice labels with shuffled ids into one id per 3D object."""
from __future__ import annotations

import numpy as np
import pytest
from _workflow_data import same_partition, shuffle_per_slice, spheres

import napari_segany as nsa
from napari_segany.engine.errors import ImageError
from napari_segany.engine.workflows.overlap import Overlaps, match_one_to_one

SHAPE = (24, 64, 64)
CENTERS = [(6, 12, 12), (12, 40, 20), (10, 20, 48), (16, 48, 50), (18, 14, 30)]
RADII = [5, 8, 6, 7, 4]


def test_spheres_recovered_one_id_each():
    truth = spheres(SHAPE, CENTERS, RADII)
    linked = nsa.link_slices(shuffle_per_slice(truth))
    assert linked.dtype == np.int32 and linked.shape == SHAPE
    assert same_partition(truth, linked)  # none merged, none split
    assert set(np.unique(linked)) == set(range(len(CENTERS) + 1))


def test_ids_numbered_in_order_of_first_appearance():
    truth = spheres(SHAPE, CENTERS, RADII)
    linked = nsa.link_slices(shuffle_per_slice(truth, seed=3))
    first = []
    for z in range(SHAPE[0]):
        flat = linked[z].ravel()
        for i in flat[np.sort(np.unique(flat, return_index=True)[1])]:
            if i and i not in first:
                first.append(int(i))
    assert first == list(range(1, len(CENTERS) + 1))


def test_touching_spheres_stay_apart():
    truth = spheres((20, 40, 60), [(10, 20, 17), (10, 20, 35)], [8, 10])  # touch at x = 25
    assert np.any((truth[:, :, :-1] == 1) & (truth[:, :, 1:] == 2))  # they do touch
    assert same_partition(truth, nsa.link_slices(shuffle_per_slice(truth)))


def test_a_gap_slice_separates_objects():
    truth = spheres((21, 40, 40), [(5, 20, 20), (15, 20, 20)], [4, 4])  # same column
    per_slice = shuffle_per_slice(truth)
    per_slice[10] = 0  # nothing in between (the spheres do not reach it anyway)
    cut = spheres((21, 40, 40), [(10, 20, 20)], [6])
    cut[10] = 0  # one sphere with a missing slice: two objects
    assert same_partition(truth, nsa.link_slices(per_slice))
    linked = nsa.link_slices(shuffle_per_slice(cut))
    assert set(np.unique(linked[:10])) == {0, 1} and set(np.unique(linked[11:])) == {0, 2}


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_any_slice_axis(axis):
    truth = spheres(SHAPE, CENTERS, RADII)
    moved = np.moveaxis(truth, 0, axis)
    per_slice = np.moveaxis(shuffle_per_slice(np.moveaxis(moved, axis, 0)), 0, axis)
    linked = nsa.link_slices(per_slice, axis=axis)
    assert linked.shape == moved.shape and same_partition(moved, linked)


def test_min_iou_decides_the_links():
    labels = np.zeros((4, 20, 20), np.int32)
    labels[:2, 5:15, 2:12] = 7
    labels[2:, 5:15, 6:16] = 3  # shifted by 4 of 10: IoU = 60 / 140 = 0.43
    assert set(np.unique(nsa.link_slices(labels, min_iou=0.4))) == {0, 1}
    assert set(np.unique(nsa.link_slices(labels, min_iou=0.5))) == {0, 1, 2}


def test_small_end_slices_join_their_object_thicker_objects_do_not():
    labels = np.zeros((6, 30, 30), np.int32)
    labels[1:4, 5:25, 5:25] = 4  # a 20 x 20 object on slices 1..3
    labels[0, 12:16, 12:16] = 9  # its tip below: 16 px inside 400, IoU 0.04
    labels[4, 10:14, 10:14] = 2  # and above
    linked = nsa.link_slices(labels)
    assert set(np.unique(linked)) == {0, 1}
    labels[5, 10:14, 10:14] = 2  # the top one is now two slices thick: its own object
    linked = nsa.link_slices(labels)
    assert set(np.unique(linked[:4])) == {0, 1} and set(np.unique(linked[4:])) == {0, 2}


def test_assignment_is_optimal_not_greedy():
    # a: 0, 1; b: 0, 1.  Greedy takes (0, 0) = 0.6 and leaves 1 unmatched; the best total
    # is (0, 1) + (1, 0) = 0.5 + 0.45.
    ov = Overlaps(np.array([0, 0, 1]), np.array([0, 1, 0]), np.ones(3), np.ones(3), np.ones(3))
    rows, cols = match_one_to_one(ov, np.array([0.6, 0.5, 0.45]), 0.3)
    assert rows.tolist() == [0, 1] and cols.tolist() == [1, 0]
    rows, cols = match_one_to_one(ov, np.array([0.6, 0.5, 0.45]), 0.55)
    assert rows.tolist() == [0] and cols.tolist() == [0]


def test_output_array_and_overflow():
    truth = spheres(SHAPE, CENTERS, RADII)
    out = np.zeros(SHAPE, np.uint16)
    assert nsa.link_slices(shuffle_per_slice(truth), out=out) is out
    assert same_partition(truth, out)
    many = np.arange(1, 2 * 20 * 20 + 1, dtype=np.int32).reshape(2, 20, 20)
    many[1] += 10_000  # 800 one-pixel objects, none linked
    with pytest.raises(ValueError, match="do not fit"):
        nsa.link_slices(many, min_iou=1.0, out=np.zeros(many.shape, np.uint8))


def test_empty_volume_and_bad_inputs():
    assert not nsa.link_slices(np.zeros((3, 5, 5), np.uint8)).any()
    with pytest.raises(ImageError, match="integer label array"):
        nsa.link_slices(np.zeros((3, 5, 5), np.float32))
    with pytest.raises(ImageError, match="boolean mask"):
        nsa.link_slices(np.zeros((3, 5, 5), bool))
    with pytest.raises(ImageError, match="3 dimensions"):
        nsa.link_slices(np.zeros((5, 5), np.int32))
    with pytest.raises(ImageError, match=">= 0"):
        nsa.link_slices(-np.ones((2, 5, 5), np.int32))
    with pytest.raises(ValueError, match="min_iou"):
        nsa.link_slices(np.zeros((3, 5, 5), np.int32), min_iou=0)
    with pytest.raises(ValueError, match="axis"):
        nsa.link_slices(np.zeros((3, 5, 5), np.int32), axis=3)

"""Label images of everything mode without extra full-size copies: painting into a given
array (a Labels layer's slice), the smallest id type, and masks unpacked once."""
from __future__ import annotations

import numpy as np
import pytest

from napari_segany.engine.everything.masks import CompactMask
from napari_segany.engine.everything.result import (
    EverythingResult, Record, labels_dtype, paint_labels,
)


def _disk(shape, cy, cx, r):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _result(shape=(40, 50)):
    masks = [_disk(shape, 20, 25, 15), _disk(shape, 18, 22, 5), _disk(shape, 5, 5, 3),
             np.zeros(shape, bool)]
    records = [Record(CompactMask.from_dense(m), {"area": int(m.sum())}) for m in masks]
    return EverythingResult(records, shape, "grid"), masks


def test_crop_is_bool_and_exact():
    mask = _disk((33, 47), 10, 30, 8)
    compact = CompactMask.from_dense(mask)
    crop = compact.crop()
    assert crop.dtype == bool and crop.flags.writeable
    y0, x0, y1, x1 = compact.bbox
    assert np.array_equal(crop, mask[y0:y1, x0:x1]) and np.array_equal(compact.decode(), mask)


def test_paint_matches_labels_in_the_smallest_type():
    result, masks = _result()
    painted = result.paint()
    assert painted.dtype == np.uint16
    assert np.array_equal(painted, result.labels) and result.labels.dtype == np.int32
    # the smaller mask stays on top of the larger one; the empty mask paints nothing
    assert painted[18, 22] == 2 and painted[20, 38] == 1 and painted[5, 5] == 3
    assert 4 not in painted
    assert "labels" in result.__dict__  # .labels is cached; paint() is not
    fresh, _ = _result()
    fresh.paint()
    assert "labels" not in fresh.__dict__


def test_paint_into_a_slice_of_a_stack_clears_it_first():
    result, _ = _result()
    stack = np.full((3, 40, 50), 9, np.uint16)
    out = result.paint(out=stack[1])
    assert out.base is stack or np.shares_memory(out, stack)
    assert np.array_equal(stack[1], result.labels)
    assert (stack[0] == 9).all() and (stack[2] == 9).all()


def test_paint_refuses_ids_that_do_not_fit_or_a_wrong_shape():
    mask = CompactMask.from_dense(np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="do not fit"):
        paint_labels([mask] * 256, (2, 2), out=np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        paint_labels([mask], (2, 2), out=np.zeros((3, 2), np.uint16))


def test_labels_dtype_keeps_every_id():
    assert labels_dtype(0) == np.uint16 and labels_dtype(65_535) == np.uint16
    assert labels_dtype(65_536) == np.int32

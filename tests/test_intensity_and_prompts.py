"""Image normalisation rule and prompt validation/conversion (no model needed)."""
from __future__ import annotations

import numpy as np
import pytest

from napari_segany.engine.errors import ImageError, PromptError
from napari_segany.engine.images import to_uint8_rgb
from napari_segany.engine.interactive import box_to_rectangle, rc_to_xy, rectangle_to_box, xy_to_rc
from napari_segany.engine.interactive.prompts import check_box, check_points
from napari_segany.engine.interactive.transforms import LongestSideTransform, StretchTransform


def test_uint8_rgb_passes_unchanged():
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_uint8_rgb(image), image)


@pytest.mark.parametrize("shape", [(6, 8), (6, 8, 1)])
def test_gray_is_copied_to_three_channels(shape):
    out = to_uint8_rgb(np.arange(48, dtype=np.uint8).reshape(shape))
    assert out.shape == (6, 8, 3) and (out[..., 0] == out[..., 2]).all()


def test_rgba_drops_alpha():
    image = np.zeros((4, 4, 4), np.uint8)
    image[..., 3] = 255
    assert to_uint8_rgb(image).max() == 0


def test_uint16_uses_percentiles_and_contrast_limits():
    image = np.linspace(0, 4000, 100 * 100).reshape(100, 100).astype(np.uint16)
    auto = to_uint8_rgb(image)
    assert auto.min() == 0 and auto.max() == 255
    manual = to_uint8_rgb(image, contrast_limits=(0, 8000))
    assert 125 <= manual.max() <= 130  # 4000 of 8000 -> mid grey: what the user sees


def test_float_and_bool_and_flat():
    assert to_uint8_rgb(np.eye(3, dtype=bool)).max() == 255
    assert to_uint8_rgb(np.full((3, 3), 7.5)).max() == 0  # flat image: no division by zero
    out = to_uint8_rgb(np.random.default_rng(1).normal(size=(20, 20)))
    assert out.dtype == np.uint8


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 3, 4, 5)), "one 2D image"),
    (np.zeros((4, 4, 2)), "one 2D image"),
    (np.zeros((1, 10)), "at least 2x2"),
    (np.zeros((0, 10)), "at least 2x2"),
    (np.array([[np.nan, 1], [1, 1]]), "NaN"),
    (np.array([["a", "b"], ["c", "d"]]), "Unsupported pixel type"),
])
def test_bad_images_raise_clear_errors(bad, match):
    with pytest.raises(ImageError, match=match):
        to_uint8_rgb(bad)


def test_napari_rowcol_to_sam_xy_and_back():
    points_rc = np.array([[3, 10.0, 20.0]])  # (z, row, col)
    np.testing.assert_array_equal(rc_to_xy(points_rc), [[20.0, 10.0]])
    np.testing.assert_array_equal(xy_to_rc([[20.0, 10.0]]), [[10.0, 20.0]])
    box = rectangle_to_box([[5, 2], [5, 9], [1, 9], [1, 2]])
    np.testing.assert_array_equal(box, [2, 1, 9, 5])
    np.testing.assert_array_equal(rectangle_to_box(box_to_rectangle(box)), box)


def test_prompt_validation():
    size = (100, 50)  # H, W
    coords, labels = check_points([[10, 90]], [1], size)
    assert labels.dtype == np.int64
    with pytest.raises(PromptError, match="outside"):
        check_points([[60, 10]], [1], size)  # x = 60 > W = 50
    with pytest.raises(PromptError, match="shape"):
        check_points([[1, 2, 3]], [1], size)
    with pytest.raises(PromptError, match="labels"):
        check_points([[1, 2]], [5], size)
    with pytest.raises(PromptError, match="both"):
        check_points([[1, 2]], None, size)
    with pytest.raises(PromptError, match="NaN"):
        check_box([0, np.nan, 3, 4], size)
    with pytest.raises(PromptError, match="outside"):
        check_box([60, 0, 70, 10], size)
    np.testing.assert_array_equal(check_box([9, 8, 1, 2], size), [1, 2, 9, 8])


def test_longest_side_geometry():
    t = LongestSideTransform(1024, (0, 0, 0), (1, 1, 1))
    assert t.input_size((300, 451)) == (681, 1024)
    x, input_size = t.to_model_input(np.zeros((300, 451, 3), np.uint8))
    assert x.shape == (1, 3, 1024, 1024) and input_size == (681, 1024)
    np.testing.assert_allclose(t.apply_coords([[451, 300]], (300, 451)), [[1024, 681]], atol=1)


def test_stretch_geometry_marks_negative_coordinates():
    t = StretchTransform(1024, (0.5,) * 3, (0.25,) * 3)
    assert t.input_size((300, 451)) == (1024, 1024)
    out = t.apply_coords(np.array([[451.0, 150.0], [-1.0, -1.0]]), (300, 451))
    np.testing.assert_allclose(out, [[1024, 512], [-1, -1]])

"""Batch inputs without a model: files, folders, globs, lazy readers, axes and channels."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_segany.engine.batch.axes import plane_axes
from napari_segany.engine.batch.readers import open_source
from napari_segany.engine.batch.sources import expand_inputs
from napari_segany.engine.errors import ImageError


def test_files_folders_and_globs(tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(tmp_path / "in" / name, np.zeros((4, 4), np.uint8))
    np.save(tmp_path / "in" / "c.npy", np.zeros((4, 4)))
    (tmp_path / "in" / "notes.txt").write_text("x")
    skipped = []
    assert [p.name for p in expand_inputs([tmp_path / "in"], skipped)] == ["a.tif", "b.tif", "c.npy"]
    assert [p.name for p in skipped] == ["notes.txt"]
    assert [p.name for p in expand_inputs([str(tmp_path / "in" / "*.tif")])] == ["a.tif", "b.tif"]
    with pytest.raises(FileNotFoundError, match="matches no file"):
        expand_inputs([str(tmp_path / "in" / "*.png")])
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(ImageError, match="share the name 'c'"):
        expand_inputs([tmp_path / "in", tmp_path / "c.tif"])


def test_tiff_is_read_lazily_memory_mapped_or_through_zarr(tmp_path):
    data = np.arange(3 * 5 * 6, dtype=np.uint16).reshape(3, 5, 6)
    tifffile.imwrite(tmp_path / "plain.tif", data, photometric="minisblack")
    tifffile.imwrite(tmp_path / "packed.tif", data, compression="zlib", photometric="minisblack")
    plain, packed = open_source(tmp_path / "plain.tif"), open_source(tmp_path / "packed.tif")
    assert isinstance(plain.array, np.memmap) and not isinstance(packed.array, np.ndarray)
    assert np.array_equal(plain[1], data[1]) and np.array_equal(packed[2], data[2])
    packed.close()
    with pytest.raises(ImageError, match="choose --level 0..0"):
        open_source(tmp_path / "packed.tif", level=3)


def test_axes_and_channels_say_what_to_give():
    layout = plane_axes((2, 3, 4, 20, 30), "TCZYX", 2, "everything")
    assert (layout.leading, layout.leading_shape, layout.n_planes) == ("TZ", (2, 4), 8)
    assert layout.source_index(5) == (1, 2, 1, slice(None), slice(None))
    rgb = plane_axes((4, 20, 30, 3), None, None, "everything")
    assert (rgb.leading, rgb.colour) == ("Z", "S")
    assert plane_axes((4, 20, 30), None, None, "track").leading == "T"
    with pytest.raises(ImageError, match="choose one with --channel 0..4"):
        plane_axes((5, 20, 30), "CYX", None, "everything")
    with pytest.raises(ImageError, match="give them with --axes"):
        plane_axes((2, 3, 4, 20, 30), None, None, "everything")
    with pytest.raises(ImageError, match="one distinct letter"):
        plane_axes((20, 30), "ZYX", None, "everything")
    moved = plane_axes((20, 3, 30), "YCX", None, "everything")  # colour read last
    plane = moved.read_plane(np.zeros((20, 3, 30)), 0)
    assert plane.shape == (20, 30, 3)

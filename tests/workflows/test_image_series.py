"""ImageSeries: the model of the image-series dock (list, done, resume, load, save, bad files)."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

import napari_segany as nsa
from napari_segany.engine.errors import ImageError, SegAnyError


@pytest.fixture
def folders(tmp_path):
    images, output = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    rng = np.random.default_rng(0)
    tifffile.imwrite(images / "a_01.tif", rng.integers(0, 4000, (20, 30), dtype=np.uint16))
    Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(images / "a_02.png")
    (images / "a_03.tif").write_bytes(b"II*\x00 not really a tiff")  # a bad file
    np.save(images / "a_04.npy", rng.random((20, 30)).astype(np.float32))
    (images / "notes.txt").write_text("not an image")
    return images, output


def test_lists_images_and_resumes_at_the_first_not_done(folders):
    images, output = folders
    series = nsa.ImageSeries(images, output)
    assert [p.name for p in series.images] == ["a_01.tif", "a_02.png", "a_03.tif", "a_04.npy"]
    assert [p.name for p in series.skipped] == ["notes.txt"]
    assert series.done == [False] * 4 and series.resume_index() == 0
    assert series.progress_text() == "0 / 4 done"
    assert series.labels_path(1) == output / "a_02.tif"


def test_save_reload_and_resume_in_a_new_session(folders):
    images, output = folders
    series = nsa.ImageSeries(images, output)
    labels = np.zeros((20, 30), np.int32)
    labels[2:8, 3:9] = 300
    path = series.save_labels(0, labels)
    assert path == output / "a_01.tif" and series.is_done(0)
    assert series.load_labels(0).dtype == np.uint16  # the smallest type that holds the ids
    assert np.array_equal(series.load_labels(0), labels) and series.load_labels(1) is None
    assert not [p for p in output.iterdir() if p.name.startswith(".")]  # no temporary left
    again = nsa.ImageSeries(images, output)  # reopened later
    assert again.done == [True, False, False, False] and again.resume_index() == 1
    assert again.progress_text() == "1 / 4 done"


def test_bad_files_are_reported_and_skipped(folders):
    images, output = folders
    series = nsa.ImageSeries(images, output)
    assert series.load_image(0).shape == (20, 30) and series.load_image(1).shape == (20, 30, 3)
    with pytest.raises(ImageError, match="a_03.tif"):
        series.load_image(2)
    assert 2 in series.bad and "a_03.tif" in series.bad[2]
    assert series.next_index(1) == 3 and series.previous_index(3) == 1
    assert series.next_index(3) is None and series.previous_index(0) is None
    series.save_labels(0, np.ones((20, 30), np.uint8))
    series.save_labels(1, np.ones((20, 30), np.uint8))
    assert series.resume_index() == 3  # the bad one is not waited for
    series.save_labels(3, np.ones((20, 30), np.uint8))
    assert series.resume_index() == 3  # all done (but the bad one): stay on the last


def test_glob_and_list_sources(folders):
    images, output = folders
    series = nsa.ImageSeries(str(images / "a_0[12].*"), output)
    assert [p.name for p in series.images] == ["a_01.tif", "a_02.png"]
    listed = nsa.ImageSeries([images / "a_04.npy", images / "notes.txt"], output)
    assert [p.name for p in listed.images] == ["a_04.npy"] and len(listed.skipped) == 1
    with pytest.raises(ImageError, match="No image"):
        nsa.ImageSeries(str(images / "*.czi"), output)


def test_refuses_ambiguous_or_dangerous_outputs(folders):
    images, output = folders
    with pytest.raises(SegAnyError, match="Choose another folder"):
        nsa.ImageSeries(images, images)
    tifffile.imwrite(images / "a_02.tif", np.zeros((4, 4), np.uint8))  # same stem as a_02.png
    with pytest.raises(SegAnyError, match="rename one"):
        nsa.ImageSeries(images, output)


def test_unreadable_saved_labels_say_what_to_do(folders):
    images, output = folders
    series = nsa.ImageSeries(images, output)
    output.mkdir()
    (output / "a_01.tif").write_bytes(b"broken")
    assert series.is_done(0)
    with pytest.raises(SegAnyError, match="Delete or rename"):
        series.load_labels(0)

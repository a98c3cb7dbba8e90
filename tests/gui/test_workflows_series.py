"""The Image Series dock driven as a user drives it: open a folder, next / previous (buttons
and keys), labels saved when an image is left and loaded back, a bad file skipped with a
notification, a new session resuming where the last stopped, and the next image embedded
in the background into the Segment Anything dock's cache (a geometric fake model)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from qtpy.QtCore import Qt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _everything import cells_image  # noqa: E402

from napari_segany.gui.shared.labels_io import LABELS_NAME  # noqa: E402
from napari_segany.gui.workflows import series_dock  # noqa: E402
from napari_segany.gui.workflows.segany_link import embedding_key  # noqa: E402
from napari_segany.gui.workflows.series_dock import IMAGE_NAME  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture
def plates(tmp_path):
    """Four image files, the second unreadable; and the output folder."""
    folder = tmp_path / "plates"
    folder.mkdir()
    images = {}
    for k in (0, 2, 3):
        images[k] = (cells_image(seed=k) * 10).astype(np.uint16)
        tifffile.imwrite(folder / f"field_{k:02d}.tif", images[k])
    (folder / "field_01.tif").write_bytes(b"II*\x00 this is not a TIFF")
    (folder / "notes.txt").write_text("not an image")
    return folder, tmp_path / "labels", images


@pytest.fixture
def notes(monkeypatch):
    shown = []
    for level in ("info", "warning", "error"):
        monkeypatch.setattr(series_dock, f"show_{level}",
                            lambda msg, lv=level: shown.append((lv, str(msg))))
    return shown


def open_dock(viewer, qtbot, folder, output):
    _, widget = viewer.window.add_plugin_dock_widget("napari-segany", "Image Series")
    widget.source_edit.setText(str(folder))
    widget.output_edit.setText(str(output))
    qtbot.mouseClick(widget.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.index is not None and not widget.busy, timeout=20000)
    return widget


def press(viewer, key):
    for binding, func in viewer.keymap.items():
        if str(binding) == key:
            return func(viewer)
    raise KeyError(key)


def marks(widget):
    return [widget.image_list.item(i).text()[0] for i in range(widget.image_list.count())]


def test_next_previous_save_on_leave_bad_file_and_resume(make_napari_viewer, qtbot, plates, notes):
    folder, output, images = plates
    viewer = make_napari_viewer()
    widget = open_dock(viewer, qtbot, folder, output)
    assert ("info", f"1 file(s) of {folder} are not images: skipped.") in notes
    image, labels = viewer.layers[IMAGE_NAME], viewer.layers[LABELS_NAME]
    assert widget.index == 0 and np.array_equal(image.data, images[0])
    assert labels.data.shape == images[0].shape and not labels.data.any()
    assert widget.progress_label.text().startswith("0 / 4 done")
    labels.data_setitem((np.arange(5, 10), np.arange(5, 10)), 3)  # the user paints
    painted = labels.data.copy()

    qtbot.mouseClick(widget.next_button, Qt.MouseButton.LeftButton)  # the bad file is skipped
    qtbot.waitUntil(lambda: widget.index == 2 and not widget.busy, timeout=20000)
    assert any(lv == "warning" and "Skipped field_01.tif" in msg for lv, msg in notes)
    assert np.array_equal(viewer.layers[IMAGE_NAME].data, images[2]) and not labels.data.any()
    assert np.array_equal(tifffile.imread(output / "field_00.tif"), painted)  # saved on leave
    assert marks(widget) == ["✓", "✗", "·", "·"] and widget.image_list.currentRow() == 2
    assert widget.progress_label.text().startswith("1 / 4 done")

    press(viewer, "PageDown")  # an image left without objects: nothing saved, not done
    qtbot.waitUntil(lambda: widget.index == 3 and not widget.busy, timeout=20000)
    assert not (output / "field_02.tif").exists()
    press(viewer, "Shift+Left")
    qtbot.waitUntil(lambda: widget.index == 2 and not widget.busy, timeout=20000)
    widget.previous()  # skips the bad file: back to the first image and its labels
    assert widget.index == 0 and np.array_equal(labels.data, painted)
    widget.go_to(3)
    viewer.layers[LABELS_NAME].data_setitem((np.array([1]), np.array([1])), 9)
    viewer.window.remove_dock_widget(widget.parent())  # closing saves the image shown
    assert tifffile.imread(output / "field_03.tif")[1, 1] == 9

    again = open_dock(make_napari_viewer(), qtbot, folder, output)  # a new session
    assert again.index == 2  # the first image not done (the bad one is skipped)
    assert again.progress_label.text().startswith("2 / 4 done")


def test_save_now_marks_an_empty_image_done(make_napari_viewer, qtbot, plates):
    folder, output, _ = plates
    widget = open_dock(make_napari_viewer(), qtbot, folder, output)
    qtbot.mouseClick(widget.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.busy and marks(widget)[0] == "✓", timeout=20000)
    assert (output / "field_00.tif").is_file()


def test_a_user_layer_named_like_ours_is_renamed_not_overwritten(make_napari_viewer, qtbot,
                                                                 plates, notes):
    folder, output, _ = plates
    viewer = make_napari_viewer()
    mine = viewer.add_labels(np.full((4, 4), 5, np.uint8), name=LABELS_NAME)
    open_dock(viewer, qtbot, folder, output)
    assert mine.name == f"{LABELS_NAME} (before the series)" and (mine.data == 5).all()
    assert viewer.layers[LABELS_NAME].data.shape == (96, 128)


def test_refused_output_folder(make_napari_viewer, plates, notes):
    folder, _, _ = plates
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-segany", "Image Series")
    widget.open(folder, folder)
    assert notes[-1][0] == "error" and "holds the images" in notes[-1][1]
    assert widget.series is None


def test_next_image_embedded_in_the_background_for_segment_anything(
        make_napari_viewer, qtbot, plates, fake_checkpoint):
    folder, output, images = plates
    viewer = make_napari_viewer()
    _, segany = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Anything")
    segany.set_model("fake_sam", checkpoint=str(fake_checkpoint), device="cpu")
    widget = open_dock(viewer, qtbot, folder, output)
    assert segany.source.layer.name == IMAGE_NAME and segany.writer.layer.name == LABELS_NAME
    widget.wait_prefetch()
    assert widget.embedded == {2}  # the next readable image
    limits = widget.images[2].limits
    assert embedding_key(segany.predictor, images[2], limits) in segany.cache  # before it is shown

    segany.segment(points=[[30, 40]])  # the user segments an object on the first image
    assert segany.commit() == [1]
    widget.next()
    assert np.array_equal(segany.source.layer.data, images[2])
    key = segany.embeddings.key_for(segany.source, ())
    assert key in segany.cache and segany.embeddings.request(segany.source, ()) is not None
    assert segany.embeddings.job is None  # found: nothing computed now
    assert tifffile.imread(output / "field_00.tif").max() == 1  # the committed object, saved


def test_a_dock_opened_again_adopts_the_series_layers(make_napari_viewer, qtbot, plates, notes):
    folder, output, _ = plates
    viewer = make_napari_viewer()
    first = open_dock(viewer, qtbot, folder, output)
    viewer.window.remove_dock_widget(first.parent())
    second = open_dock(viewer, qtbot, folder, output)
    assert [layer.name for layer in viewer.layers] == [IMAGE_NAME, LABELS_NAME]
    assert second.labels_layer == viewer.layers[LABELS_NAME] and not any(
        "renamed" in msg for _, msg in notes)


def test_undo_does_not_reach_into_another_image(make_napari_viewer, qtbot, plates):
    folder, output, _ = plates
    viewer = make_napari_viewer()
    widget = open_dock(viewer, qtbot, folder, output)
    labels = viewer.layers[LABELS_NAME]
    where = (np.arange(5, 10), np.arange(5, 10))
    labels.data_setitem(where, 3)
    widget.next()
    labels.data_setitem(where, 4)  # the same pixels on the next image
    widget.previous()
    assert (labels.data[where] == 3).all()
    labels.undo()  # nothing to undo on this image since it was shown again
    assert (labels.data[where] == 3).all()


def test_gray_then_colour_images_keep_segment_anything_on_the_series(make_napari_viewer, qtbot,
                                                                      tmp_path):
    from PIL import Image as PILImage

    folder = tmp_path / "mixed"
    folder.mkdir()
    tifffile.imwrite(folder / "a_gray.tif", (cells_image(seed=1) * 10).astype(np.uint16))
    colour = np.zeros((60, 80, 3), np.uint8)
    colour[10:30, 20:50] = (200, 40, 40)
    PILImage.fromarray(colour).save(folder / "b_colour.png")
    viewer = make_napari_viewer()
    _, segany = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Anything")
    widget = open_dock(viewer, qtbot, folder, tmp_path / "out")
    widget.next()
    image = viewer.layers[IMAGE_NAME]
    assert image.rgb and np.array_equal(image.data, colour)  # a new layer: RGB cannot be set
    assert viewer.layers[LABELS_NAME].data.shape == (60, 80)
    assert segany.source.layer == image and segany.writer.layer == viewer.layers[LABELS_NAME]
    assert widget.images[1].limits == (0.0, 255.0)

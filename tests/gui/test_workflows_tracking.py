"""The Tracking dock driven as a user drives it, on moving disks where one divides: track (a
worker), the Labels and Tracks layers with the lineage graph, corrections (merge, split at
the shown frame, parent set and cleared, undo), refusals, and the CTC export read back."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import Qt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflows"))
from _workflow_data import DIVISION_FRAME, N_FRAMES, dividing_movie  # noqa: E402

from napari_segany.engine.workflows.ctc import read_ctc  # noqa: E402
from napari_segany.engine.workflows.tracking import track_labels  # noqa: E402
from napari_segany.gui.workflows import tracking_dock  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture
def tracked(make_napari_viewer, qtbot, monkeypatch):
    """A viewer with the movie "frames", the dock, Track clicked and finished; the
    notifications in ``widget.notes``."""
    notes = []
    for level in ("info", "error"):
        monkeypatch.setattr(tracking_dock, f"show_{level}",
                            lambda msg, lv=level: notes.append((lv, str(msg))))
    movie, truth = dividing_movie()
    viewer = make_napari_viewer()
    viewer.add_labels(movie, name="frames")
    _, widget = viewer.window.add_plugin_dock_widget("napari-segany", "Tracking")
    widget.input_picker.choose("frames")
    qtbot.mouseClick(widget.track_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.editor is not None and not widget.jobs.busy, timeout=20000)
    widget.notes = notes
    return viewer, widget, movie, truth


def click(qtbot, button):
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_track_shows_the_tracks_and_the_lineage(tracked):
    viewer, widget, movie, truth = tracked
    expected = track_labels(movie, min_iou=0.3, divisions=True)
    labels, tracks = viewer.layers["frames tracks"], viewer.layers["frames lineage"]
    assert np.array_equal(labels.data, expected.labels)
    np.testing.assert_allclose(tracks.data, expected.tracks)
    parent = int(expected.labels[DIVISION_FRAME - 1][truth["B"][0]])
    on_division = expected.labels[DIVISION_FRAME]
    daughters = {int(on_division[truth[d][DIVISION_FRAME]]) for d in ("B1", "B2")}
    graph = {int(k): [int(p) for p in v] for k, v in tracks.graph.items()}
    assert graph == {d: [parent] for d in daughters}
    assert "5 tracks, 2 daughters" in widget.status_label.text()
    assert ("info", "Tracked 'frames': 5 tracks in 'frames tracks'.") in widget.notes


def test_split_set_parent_merge_and_undo_update_both_layers(tracked, qtbot):
    viewer, widget, _, truth = tracked
    labels, tracks = viewer.layers["frames tracks"], viewer.layers["frames lineage"]
    before = labels.data.copy()
    a = int(before[0][truth["A"][0]])
    labels.selected_label = a  # picked on the Labels layer
    click(qtbot, widget.a_pick)
    assert widget.a_spin.value() == a and "frames 0..9" in widget.info_label.text()
    viewer.dims.set_point(0, 4)
    click(qtbot, widget.split_button)  # split A at the shown frame
    qtbot.waitUntil(lambda: not widget.jobs.busy and "split" in widget.status_label.text())
    new = int(before.max()) + 1
    assert (labels.data[4:][before[4:] == a] == new).all() and (labels.data[:4] == before[:4]).all()
    assert set(tracks.data[tracks.data[:, 0] == new, 1]) == set(range(4, N_FRAMES))
    widget.b_spin.setValue(a)
    widget.a_spin.setValue(new)
    click(qtbot, widget.parent_button)  # A is the new track's parent: a division
    assert tracks.graph[new] == [a] and "parent" in widget.status_label.text()
    click(qtbot, widget.orphan_button)
    assert new not in tracks.graph
    widget.b_spin.setValue(new)
    widget.a_spin.setValue(a)
    click(qtbot, widget.merge_button)
    qtbot.waitUntil(lambda: not widget.jobs.busy and "merged" in widget.status_label.text())
    assert np.array_equal(labels.data, before) and new not in set(tracks.data[:, 0])
    click(qtbot, widget.undo_button)  # the merge: split again
    assert (labels.data == new).sum() == (before[4:] == a).sum() and len(tracks.graph) == 2
    click(qtbot, widget.undo_button)  # the parent cleared: set again
    assert tracks.graph[new] == [a]
    for _ in range(2):  # the parent set, the split: back to the tracking
        click(qtbot, widget.undo_button)
    assert np.array_equal(labels.data, before) and new not in set(tracks.data[:, 0])
    assert len(tracks.graph) == 2
    click(qtbot, widget.undo_button)
    assert ("info", "No correction to undo.") in widget.notes


def test_a_wrong_correction_is_refused_and_changes_nothing(tracked, qtbot):
    viewer, widget, _, truth = tracked
    labels = viewer.layers["frames tracks"]
    before = labels.data.copy()
    widget.a_spin.setValue(int(before[0][truth["A"][0]]))
    widget.b_spin.setValue(int(before[0][truth["C"][0]]))  # both present on frame 0
    click(qtbot, widget.merge_button)
    assert widget.notes[-1][0] == "error" and "two objects" in widget.notes[-1][1]
    assert np.array_equal(labels.data, before) and not widget.editor.history


def test_ctc_export_writes_files_that_read_back(tracked, tmp_path):
    viewer, widget, _, truth = tracked
    widget.split(int(viewer.layers["frames tracks"].data[0][truth["A"][0]]), frame=6)
    folder = tmp_path / "01_GT" / "TRA"
    widget.folder_edit.setText(str(folder))
    widget.kind_combo.setCurrentText("man")
    widget.export_button.click()
    widget.wait()
    assert (folder / "man_track.txt").is_file()
    masks = sorted(p.name for p in folder.glob("*.tif"))
    assert masks == [f"man_track{t:03d}.tif" for t in range(N_FRAMES)]
    again = read_ctc(folder)
    assert np.array_equal(again.labels, viewer.layers["frames tracks"].data)
    assert np.array_equal(again.lineage(), widget.editor.result.lineage())
    assert widget.export_button.isEnabled()

"""The "Tracking" dock: per-frame labels (T, Y, X) into tracks with divisions, corrected by
hand and exported in the Cell Tracking Challenge format.

Scripting::

    dock, w = viewer.window.add_plugin_dock_widget("napari-segany", "Tracking")
    w.track("per-frame labels", min_iou=0.3, divisions=True)   # waits; two new layers
    w.merge(3, 7); w.split(4, frame=12); w.set_parent(5, 2); w.set_parent(5, None)
    w.undo_correction()
    w.export_ctc("ctc/01_RES", kind="res")

*Track* runs ``track_labels`` in a worker (progress by frame, Cancel) and shows the result
as a Labels layer (one id per track) and a Tracks layer with the lineage graph.  The
corrections act on two track ids, A and B, typed or taken from the Labels layer's selected
label (pick an object with the Labels layer's picker, then "A ← selected"): merge A and B,
split A at the shown frame, make B the parent of A, or clear A's parent.  The labels change
as one undo step, the Tracks layer follows (see ``tracking_edits``).
"""
from __future__ import annotations

from pathlib import Path

from napari.layers import Labels
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox,
    QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget,
)

from ...engine.errors import Cancelled, SegAnyError
from ...engine.workflows.ctc import write_ctc
from ...engine.workflows.tracking import track_labels
from ...engine.workflows.tracks import TrackingResult
from ..shared.qt_helpers import ShutsDownWhenClosed, wrapped_label
from .common import FrameReader, JobPanel, LayerPicker, blocking_job, report_failure
from .tracking_edits import TrackEditor, relabel_job

MAX_TRACK_ID = 2**31 - 1


class TrackingWidget(ShutsDownWhenClosed, QWidget):
    """Track, correct, export."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.closed = False
        self.editor: TrackEditor | None = None
        self._build_ui()
        self._set_editing(False)

    # ============================ public API ===============================================
    def track(self, layer=None, min_iou: float | None = None, divisions: bool | None = None,
              wait: bool = True) -> TrackEditor | None:
        """Track a (T, Y, X) Labels layer (or the chosen one); returns the editor when done."""
        if layer is not None:
            self.input_picker.choose(layer)
        if min_iou is not None:
            self.iou_spin.setValue(min_iou)
        if divisions is not None:
            self.divisions_check.setChecked(divisions)
        self._start_tracking()
        if wait:
            self.jobs.wait()
        return self.editor

    def merge(self, a: int, b: int, wait: bool = True) -> None:
        self.a_spin.setValue(a)
        self.b_spin.setValue(b)
        self._correct(lambda e: e.merge(a, b), wait)

    def split(self, track: int, frame: int | None = None, wait: bool = True) -> None:
        """Split ``track`` at ``frame`` (default: the frame shown)."""
        self.a_spin.setValue(track)
        t = self.shown_frame() if frame is None else frame
        self._correct(lambda e: e.split(track, t), wait)

    def set_parent(self, track: int, parent: int | None) -> None:
        self.a_spin.setValue(track)
        if parent is not None:
            self.b_spin.setValue(parent)
        self._correct(lambda e: e.set_parent(track, parent), wait=True)

    def undo_correction(self) -> None:
        if self.jobs.busy:  # a correction's pixels may be half written (one open undo step)
            show_info("Wait for the running job to finish.")
            return
        if self.editor is None or not self.editor.undo():
            show_info("No correction to undo.")
            return
        self.status_label.setText("Last correction undone.")

    def export_ctc(self, folder=None, kind: str | None = None, wait: bool = True) -> None:
        """Write the shown tracks in the CTC format (``kind`` "man" or "res")."""
        if folder is not None:
            self.folder_edit.setText(str(folder))
        if kind is not None:
            self.kind_combo.setCurrentText(kind)
        self._start_export()
        if wait:
            self.jobs.wait()

    def shown_frame(self) -> int:
        """The frame shown in the viewer (the time axis of the tracked labels)."""
        layer = self.editor.labels_layer if self.editor else self.input_picker.layer()
        if layer is None:
            return int(self.viewer.dims.current_step[0])
        point = layer.world_to_data(self.viewer.dims.point)
        return int(min(max(round(point[0]), 0), layer.data.shape[0] - 1))

    def wait(self, timeout: float = 600.0) -> None:
        self.jobs.wait(timeout)

    # ============================ UI =======================================================
    def _build_ui(self) -> None:
        self.input_picker = LayerPicker(self.viewer, Labels, accept=lambda l: l.data.ndim == 3)
        self.iou_spin = _spin(QDoubleSpinBox(), 0.05, 1.0, 0.3, 0.05)
        self.iou_spin.setToolTip("Objects on consecutive frames overlapping this much (IoU) "
                                 "continue one track (0.3: movement of a third of a diameter).")
        self.divisions_check = QCheckBox("Find divisions")
        self.divisions_check.setChecked(True)
        self.track_button = QPushButton("Track")
        self.a_spin = _spin(QSpinBox(), 0, MAX_TRACK_ID, 0)
        self.b_spin = _spin(QSpinBox(), 0, MAX_TRACK_ID, 0)
        self.a_pick = QPushButton("A ← selected")
        self.b_pick = QPushButton("B ← selected")
        self.merge_button = QPushButton("Merge A + B")
        self.split_button = QPushButton("Split A at this frame")
        self.parent_button = QPushButton("B is A's parent")
        self.orphan_button = QPushButton("Clear A's parent")
        self.undo_button = QPushButton("Undo correction")
        self.info_label = QLabel("")
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("folder for the CTC files (e.g. 01_RES)")
        self.browse_button = QPushButton("Browse…")
        self.kind_combo = QComboBox()
        self.kind_combo.addItems(["res", "man"])
        self.kind_combo.setToolTip("res: res_track.txt + maskTTT.tif (a result); man: "
                                   "man_track.txt + man_trackTTT.tif (a reference, e.g. corrected)")
        self.export_button = QPushButton("Export CTC")
        self.jobs = JobPanel(self)
        self.status_label = wrapped_label("Pick per-frame labels (T, Y, X), then Track.")
        self._lay_out()
        self._connect()

    def _lay_out(self) -> None:
        run = QGroupBox("Track")
        form = QFormLayout(run)
        form.addRow("Labels (T, Y, X)", self.input_picker)
        form.addRow("Link IoU", self.iou_spin)
        form.addRow(self.divisions_check)
        form.addRow(self.track_button)
        edit = QGroupBox("Corrections")
        grid = QGridLayout(edit)
        grid.addWidget(QLabel("Track A"), 0, 0)
        grid.addWidget(self.a_spin, 0, 1)
        grid.addWidget(self.a_pick, 0, 2)
        grid.addWidget(QLabel("Track B"), 1, 0)
        grid.addWidget(self.b_spin, 1, 1)
        grid.addWidget(self.b_pick, 1, 2)
        for k, button in enumerate((self.merge_button, self.split_button, self.parent_button,
                                    self.orphan_button, self.undo_button)):
            grid.addWidget(button, 2 + k // 2, k % 2)
        grid.addWidget(self.info_label, 5, 0, 1, 3)
        export = QGroupBox("Cell Tracking Challenge format")
        eform = QFormLayout(export)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit)
        folder_row.addWidget(self.browse_button)
        eform.addRow("Folder", folder_row)
        eform.addRow("Kind", self.kind_combo)
        eform.addRow(self.export_button)
        layout = QVBoxLayout(self)
        for box in (run, edit, export, self.jobs, self.status_label):
            layout.addWidget(box)
        layout.addStretch(1)

    def _connect(self) -> None:
        self.track_button.clicked.connect(lambda: self._start_tracking())
        self.a_pick.clicked.connect(lambda: self._take_selected(self.a_spin))
        self.b_pick.clicked.connect(lambda: self._take_selected(self.b_spin))
        self.merge_button.clicked.connect(
            lambda: self._correct(lambda e: e.merge(self.a_spin.value(), self.b_spin.value())))
        self.split_button.clicked.connect(
            lambda: self._correct(lambda e: e.split(self.a_spin.value(), self.shown_frame())))
        self.parent_button.clicked.connect(
            lambda: self._correct(lambda e: e.set_parent(self.a_spin.value(), self.b_spin.value())))
        self.orphan_button.clicked.connect(
            lambda: self._correct(lambda e: e.set_parent(self.a_spin.value(), None)))
        self.undo_button.clicked.connect(self.undo_correction)
        self.a_spin.valueChanged.connect(self._describe)
        self.b_spin.valueChanged.connect(self._describe)
        self.browse_button.clicked.connect(self._browse)
        self.export_button.clicked.connect(lambda: self._start_export())

    def _set_editing(self, enabled: bool) -> None:
        for w in (self.a_pick, self.b_pick, self.merge_button, self.split_button,
                  self.parent_button, self.orphan_button, self.undo_button, self.export_button):
            w.setEnabled(enabled)

    def _take_selected(self, spin) -> None:
        if self._editor_alive():
            spin.setValue(int(self.editor.labels_layer.selected_label))

    def _describe(self, *_) -> None:
        if self._editor_alive():
            self.info_label.setText("\n".join(self.editor.describe(s.value())
                                              for s in (self.a_spin, self.b_spin) if s.value()))

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the CTC files",
                                                  self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def _editor_alive(self) -> bool:
        if self.editor is not None and not self.editor.alive_in(self.viewer):
            self.editor = None
            self._set_editing(False)
        return self.editor is not None

    # ============================ tracking =================================================
    def _start_tracking(self) -> None:
        layer = self.input_picker.layer()
        if layer is None:
            show_error("No (T, Y, X) Labels layer to track: segment every frame first "
                       "(Segment Everything, all slices) and pick its labels.")
            return
        reader = FrameReader(layer.data)
        min_iou, divisions = self.iou_spin.value(), self.divisions_check.isChecked()
        job = blocking_job(lambda: track_labels(reader, min_iou, divisions), reader, "Tracking")
        if self.jobs.start(job, "Tracking", lambda result: self._tracked(layer, result)):
            self.status_label.setText(f"Tracking {layer.name!r}…")

    def _tracked(self, source, result: TrackingResult) -> None:
        if not len(result.tracks):
            show_info(f"{source.name!r} holds no object: nothing to track.")
            return
        if self._editor_alive():
            self.editor.replace(result)
        else:
            labels = self.viewer.add_labels(result.labels, name=f"{source.name} tracks",
                                            scale=source.scale, translate=source.translate)
            tracks = self.viewer.add_tracks(result.tracks, graph=result.graph,
                                            name=f"{source.name} lineage", scale=source.scale,
                                            translate=source.translate, tail_length=10)
            self.editor = TrackEditor(labels, tracks, result)
        self.viewer.layers.selection.active = self.editor.labels_layer
        self._set_editing(True)
        n, divisions = len(result.track_ids), len(result.graph) // 2
        self.status_label.setText(f"{n} tracks, {len(result.graph)} daughters "
                                  f"(about {divisions} divisions).")
        show_info(f"Tracked {source.name!r}: {n} tracks in {self.editor.labels_layer.name!r}.")

    # ============================ corrections ==============================================
    def _correct(self, make, wait: bool = False) -> None:
        if not self._editor_alive():
            show_error("No tracks to correct: Track first.")
            return
        if self.jobs.busy:
            show_info("Wait for the running job to finish.")
            return
        try:
            correction = make(self.editor)
        except (SegAnyError, ValueError) as exc:
            show_error(f"Correction refused: {exc}")
            return
        editor = self.editor
        if correction.relabel is None:
            self._corrected(editor, correction, None)
            return
        job = relabel_job(editor.labels_layer.data, correction.relabel)
        self.jobs.start(job, "Correcting the labels",
                        lambda pixels: self._corrected(editor, correction, pixels))
        if wait:
            self.jobs.wait()

    def _corrected(self, editor, correction, pixels) -> None:
        if editor is not self.editor or not self._editor_alive():
            return
        if pixels is None:
            self._applied(editor, correction, 0)
            return
        self.jobs.write(editor.labels_layer, *pixels,
                        lambda n: self._applied(editor, correction, n))

    def _applied(self, editor, correction, pixels: int | None) -> None:
        """The correction's pixels are written (None: cancelled, nothing changed)."""
        if pixels is None or editor is not self.editor:
            return
        editor.apply(correction, wrote=pixels > 0)
        self.status_label.setText(correction.text)
        self._describe()

    # ============================ export ===================================================
    def _start_export(self) -> None:
        folder = self.folder_edit.text().strip()
        if not self._editor_alive():
            show_error("No tracks to export: Track first.")
            return
        if not folder:
            show_error("Choose a folder for the CTC files first (Browse…).")
            return
        editor, kind = self.editor, self.kind_combo.currentText()
        reader = FrameReader(editor.labels_layer.data)
        result = TrackingResult(reader, editor.tracks, editor.graph)
        job = blocking_job(lambda: write_ctc(result, folder, kind), reader, "Writing CTC files")
        self._set_editing(False)  # the labels must not change while they are written
        if not self.jobs.start(job, "CTC export", self._exported, self._export_failed):
            self._set_editing(True)

    def _exported(self, path) -> None:
        self._set_editing(self._editor_alive())
        self.status_label.setText(f"Written: {path} and the masks beside it.")
        show_info(f"CTC tracks written to {Path(path).parent}.")

    def _export_failed(self, exc) -> None:
        self._set_editing(self._editor_alive())
        if isinstance(exc, Cancelled):  # masks are written frame by frame
            show_info("CTC export cancelled: the folder may hold some of the masks and no "
                      "track file; export again.")
        else:
            report_failure("CTC export", exc)

    # ============================ closing ==================================================
    def _shut_down(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.jobs.cancel()
        self.input_picker.disconnect_viewer()


def _spin(box, low, high, value, step=None):
    box.setRange(low, high)
    if step is not None:
        box.setSingleStep(step)
    box.setValue(value)
    return box

"""The controls of the Image Series dock and the list of its images (no behaviour here
beyond wiring the controls to the dock's methods)."""
from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem,
    QPushButton, QVBoxLayout,
)

from ..shared.qt_helpers import signals_blocked, wrapped_label

DONE, TODO, BAD = "✓", "·", "✗"


def build_controls(w) -> None:
    """Create the dock's controls as attributes of ``w``, lay them out and connect them."""
    w.source_edit = QLineEdit()
    w.source_edit.setPlaceholderText("a folder of images, or a pattern: plates/*_dapi.tif")
    w.source_button = QPushButton("Folder…")
    w.output_edit = QLineEdit()
    w.output_edit.setPlaceholderText("the folder for the label TIFFs")
    w.output_button = QPushButton("Folder…")
    w.open_button = QPushButton("Open series")
    w.image_list = QListWidget()
    w.image_list.setToolTip("✓ labels saved, · to do, ✗ unreadable. Double-click to go there.")
    w.previous_button = QPushButton("◀ Previous")
    w.previous_button.setToolTip("PageUp or Shift+Left")
    w.next_button = QPushButton("Next ▶")
    w.next_button.setToolTip("PageDown or Shift+Right; the labels of this image are saved")
    w.save_button = QPushButton("Save now")
    w.save_button.setToolTip("Save this image's labels now, even with no object (done)")
    w.progress_label = QLabel("No series open.")
    w.next_label = wrapped_label()
    w.status_label = wrapped_label()

    form = QFormLayout()
    form.addRow("Images", _row(w.source_edit, w.source_button))
    form.addRow("Labels to", _row(w.output_edit, w.output_button))
    form.addRow(w.open_button)
    layout = QVBoxLayout(w)
    layout.addLayout(form)
    layout.addWidget(w.image_list, 1)
    layout.addLayout(_row(w.previous_button, w.next_button))
    layout.addLayout(_row(w.progress_label, w.save_button))
    layout.addWidget(w.next_label)
    layout.addWidget(w.status_label)

    w.source_button.clicked.connect(lambda: _choose_folder(w, w.source_edit, "Folder of images"))
    w.output_button.clicked.connect(lambda: _choose_folder(w, w.output_edit, "Folder for the labels"))
    w.open_button.clicked.connect(w._open_clicked)
    w.previous_button.clicked.connect(lambda: w.previous(wait=False))
    w.next_button.clicked.connect(lambda: w.next(wait=False))
    w.save_button.clicked.connect(lambda: w.save_now(wait=False))
    w.image_list.itemDoubleClicked.connect(lambda item: w.go_to(w.image_list.row(item), wait=False))


def show_list(w) -> None:
    """Fill (or refresh) the list of images with their marks, the current one selected, and
    the progress line ("12 / 240 done")."""
    series = w.series
    if series is None:
        return
    done = series.done
    items = w.image_list
    with signals_blocked(items):
        if items.count() != len(series):
            items.clear()
            for path in series.images:
                items.addItem(QListWidgetItem(path.name))
        for i, path in enumerate(series.images):
            mark = BAD if i in series.bad else DONE if done[i] else TODO
            item = items.item(i)
            item.setText(f"{mark}  {path.name}")
            item.setToolTip(series.bad.get(i, str(path)))
            item.setData(Qt.ItemDataRole.UserRole, mark)
        if w.index is not None:
            items.setCurrentRow(w.index)
    where = f" — image {w.index + 1}: {series.images[w.index].name}" if w.index is not None else ""
    w.progress_label.setText(f"{series.progress_text()}{where}")


def _row(*widgets) -> QHBoxLayout:
    row = QHBoxLayout()
    for widget in widgets:
        (row.addLayout if isinstance(widget, QHBoxLayout) else row.addWidget)(widget)
    return row


def _choose_folder(w, edit: QLineEdit, title: str) -> None:
    folder = QFileDialog.getExistingDirectory(w, title, edit.text())
    if folder:
        edit.setText(folder)

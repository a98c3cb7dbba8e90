"""The "Embeddings on disk and tiling" panel of the Segment Anything dock.

* **Store**: the dock's embedding cache gets an on-disk :class:`EmbeddingStore` behind it
  (on by default, in the user cache folder; writes happen in a background thread).  The
  folder is remembered per image in its metadata (:mod:`..shared.stores`): choosing an image
  whose metadata names a folder switches the panel to it, and choosing a folder writes it
  there.
* **Tiling**: slices whose longest side exceeds the threshold (default: twice the model
  input and at least 2048 px) are segmented tile by tile (:mod:`.large_slices`); the panel
  holds the three fields (:class:`~..shared.tiling_fields.TilingFields`) and runs *Compute
  embedding* over every tile of a large slice (progress, Cancel).
"""
from __future__ import annotations

import threading
from pathlib import Path

from napari.qt.threading import create_worker
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox, QFileDialog, QFormLayout, QHBoxLayout, QLineEdit, QPushButton, QWidget,
)

from ...engine.embeddings import EmbeddingStore, default_store_dir
from ...engine.errors import Cancelled
from ...engine.tiling import TilingSettings
from ..shared import notify
from ..shared.job_progress import JobProgress
from ..shared.stores import METADATA_KEY, remember_store, store_for
from ..shared.tiling_fields import TilingFields
from ..shared.workers import alive_only, process_events_until

__all__ = ["METADATA_KEY", "StorePanel"]


class StorePanel(QWidget):
    """Store folder and tiling fields; ``tiling_changed`` when a tiling field moves."""

    tiling_changed = Signal()

    def __init__(self, cache, parent=None):
        super().__init__(parent)
        self.cache = cache  # its backing store follows the panel
        self.store: EmbeddingStore | None = None
        self.layer = None  # the image whose metadata remembers the folder
        self.worker = None
        self.closed = False
        self._cancel: threading.Event | None = None
        self._build_ui()
        self._apply_store()

    # ============================ UI =======================================================
    def _build_ui(self) -> None:
        self.store_check = QCheckBox("Keep embeddings on disk")
        self.store_check.setChecked(True)
        self.folder_edit = QLineEdit(str(default_store_dir()))
        self.folder_edit.setToolTip("Embeddings are reused across sessions from this folder "
                                    "(it may be shared, e.g. filled by `napari-segany embed`).")
        self.browse_button = QPushButton("Browse…")
        self.tiling = TilingFields()
        self.threshold_spin, self.tile_spin, self.halo_spin = self.tiling.spins
        self.job_progress = JobProgress()  # the tiles of a large slice
        self.progress, self.cancel_button = self.job_progress.bar, self.job_progress.cancel_button
        self._set_busy(False)

        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit)
        folder_row.addWidget(self.browse_button)
        form = QFormLayout(self)
        form.addRow(self.store_check)
        form.addRow("Folder", folder_row)
        self.tiling.add_rows(form)
        form.addRow(self.job_progress.row())

        self.store_check.toggled.connect(lambda _: self._apply_store())
        self.folder_edit.editingFinished.connect(self._apply_store)
        self.browse_button.clicked.connect(self._browse)
        self.cancel_button.clicked.connect(self.cancel)
        for spin in self.tiling.spins:
            spin.valueChanged.connect(lambda _: self.tiling_changed.emit())

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Embedding store folder",
                                                  self.folder_edit.text())
        if folder:
            self.set_folder(folder)

    # ============================ public API ==============================================
    def set_folder(self, folder, enabled: bool = True) -> None:
        """Use ``folder`` as the store (and remember it in the current layer's metadata)."""
        self.folder_edit.setText(str(Path(folder).expanduser()))
        self.store_check.setChecked(enabled)
        self._apply_store()

    def attach(self, layer) -> None:
        """An image was chosen: adopt the folder its metadata names, else give it ours."""
        self.layer = layer
        remembered = None if layer is None else layer.metadata.get(METADATA_KEY)
        if remembered:
            self.folder_edit.setText(str(remembered))
            self.store_check.setChecked(True)
            self._apply_store()
        elif layer is not None:
            remember_store(layer, self.store)

    def tiling_settings(self) -> TilingSettings:
        """When and how slices are tiled (the engine's rule; automatic values unresolved)."""
        return self.tiling.settings()

    def embed_tiles(self, tiled, wait: bool = False) -> None:
        """Embed every tile of ``tiled`` (a TiledPredictor) in a worker (progress, Cancel)."""
        if self.worker is None:
            self._cancel = threading.Event()
            self.worker = create_worker(tiled.iter_embed, cancel=self._cancel,
                                        _start_thread=False, _ignore_errors=True)
            # Results come through the event loop: dropped if the dock closed meanwhile.
            self.worker.yielded.connect(
                alive_only(self, lambda r: self.job_progress.show_fraction(r.fraction)))
            self.worker.finished.connect(alive_only(self, self._embedding_finished))
            self.worker.errored.connect(alive_only(self, self._embedding_failed))
            self._set_busy(True)
            self.worker.start()
        if wait:
            self.wait()

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def wait(self, timeout: float = 600.0) -> None:
        process_events_until(lambda: self.worker is None, timeout, "The tile embedding")

    # ============================ internals ================================================
    def _apply_store(self) -> None:
        folder = self.folder_edit.text().strip()
        enabled = self.store_check.isChecked() and bool(folder)
        if not enabled:
            self.store = None
        elif self.store is None or self.store.root != Path(folder).expanduser():
            self.store = store_for(folder)
        self.cache.backing_store = self.store
        if self.layer is not None:
            remember_store(self.layer, self.store)

    def _set_busy(self, busy: bool) -> None:
        self.job_progress.set_busy(busy)

    def _embedding_finished(self) -> None:
        self.worker = None
        self._set_busy(False)

    def _embedding_failed(self, exc) -> None:
        if not isinstance(exc, Cancelled):
            notify.error(f"Could not embed the tiles: {exc}")
        else:
            notify.info("Embedding of the tiles cancelled; finished tiles are kept.")

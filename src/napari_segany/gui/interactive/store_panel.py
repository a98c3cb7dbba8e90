"""The "Embeddings on disk and tiling" panel of the Segment Anything widget.

* **Store**: the widget's embedding cache gets an on-disk :class:`EmbeddingStore` behind it
  (on by default, in the user cache folder; writes happen in a background thread).  The
  folder is remembered per image in ``layer.metadata['napari_segany_store']``: attaching a
  layer that names a folder switches the panel to it, and choosing a folder writes it there.
* **Tiling**: slices whose longest side exceeds the threshold (default: twice the model
  input and at least 2048 px) are segmented with a :class:`TiledPredictor` (the engine's
  ``tiles_for`` / ``predictor_for`` decide, by the rule of every entry point): tiles are
  embedded when a prompt first reaches them (in the decoder's worker), or all at once with
  *Compute embedding*.  Everything else in the widget (prompts, preview, candidates,
  commits) is unchanged: the same session drives the tiled predictor.

The host widget provides ``viewer``, ``source``, ``predictor``, ``session``, ``cache``,
``embeddings`` (for slice digests), ``status_label`` and ``_forget_objects``.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QApplication, QCheckBox, QFileDialog, QFormLayout, QHBoxLayout, QLineEdit, QProgressBar,
    QPushButton, QWidget,
)

from ..engine.embeddings import EmbeddingStore, default_store_dir
from ..engine.errors import Cancelled, SegAnyError
from ..engine.interactive import InteractiveSession
from ..engine.tiling import TiledPredictor, model_input_size, predictor_for, tiles_for
from .tiling_fields import TilingFields
from .workers import alive_only

METADATA_KEY = "napari_segany_store"
#: One store per folder in the process: each has a writer thread for the life of the
#: process, so re-opened widgets and folders chosen again share it instead of adding one.
_STORES: dict[Path, EmbeddingStore] = {}


def _store_for(folder: Path) -> EmbeddingStore:
    store = _STORES.get(folder)
    if store is None:
        store = _STORES[folder] = EmbeddingStore(folder, write_behind=True)
    return store


def layer_store(layer) -> EmbeddingStore | None:
    """The store the Segment Anything widget attached ``layer`` to (its metadata), if any:
    the everything-mode widget reads and writes the same embeddings."""
    folder = layer.metadata.get(METADATA_KEY)
    return _store_for(Path(folder).expanduser()) if folder else None


class StorePanel(QWidget):
    """Store folder, tiling threshold / tile / halo, and the tiled session of large slices."""

    def __init__(self, host, parent=None):
        super().__init__(parent)
        self.host = host
        self.store: EmbeddingStore | None = None
        self.tiled: TiledPredictor | None = None
        self.session: InteractiveSession | None = None  # the host's session while tiled
        self._plain_session = None
        self._tiled_for = None  # what self.tiled was set up for
        self.worker = None
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
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)

        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit)
        folder_row.addWidget(self.browse_button)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress)
        progress_row.addWidget(self.cancel_button)
        form = QFormLayout(self)
        form.addRow(self.store_check)
        form.addRow("Folder", folder_row)
        self.tiling.add_rows(form)
        form.addRow(progress_row)

        self.store_check.toggled.connect(lambda _: self._apply_store())
        self.folder_edit.editingFinished.connect(self._apply_store)
        self.browse_button.clicked.connect(self._browse)
        self.cancel_button.clicked.connect(self.cancel)
        for spin in self.tiling.spins:
            spin.valueChanged.connect(lambda _: self._tiling_changed())

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Embedding store folder", self.folder_edit.text())
        if folder:
            self.set_folder(folder)

    # ============================ public API ==============================================
    def set_folder(self, folder, enabled: bool = True) -> None:
        """Use ``folder`` as the store (and remember it in the current layer's metadata)."""
        self.folder_edit.setText(str(Path(folder).expanduser()))
        self.store_check.setChecked(enabled)
        self._apply_store()

    def attach(self, layer) -> None:
        """An image was picked: adopt the folder its metadata names, else give it ours."""
        remembered = layer.metadata.get(METADATA_KEY)
        if remembered:
            self.folder_edit.setText(str(remembered))
            self.store_check.setChecked(True)
            self._apply_store()
        else:
            self._remember()
        self._drop_tiles()

    def use_tiles(self, index) -> bool:
        """Called before each decode: True when slice ``index`` is large and the host's
        session is now the tiled one; False (plain session restored) otherwise."""
        host = self.host
        source = host.source
        try:
            if source is None or host.predictor is None or self._tiles(source) is None:
                self._restore_plain()  # small slices, and FastSAM (it letterboxes any size)
                return False
            key = host.embeddings.key_for(source, index)
            wanted = (key, self.tile_settings(), host.predictor)
            if self._tiled_for != wanted:
                self._start_tiles(source, index, key)
                self._tiled_for = wanted
        except (SegAnyError, ValueError) as exc:
            show_error(f"Cannot tile this slice: {exc}")
            self._restore_plain()
            return False
        if host.session is not self.session:
            host._forget_objects()  # logits of another slice/session cannot be reused
            if not _is_tiled(host.session):
                self._plain_session = host.session
            host.session = self.session
        return True

    def embed_all_tiles(self, wait: bool = False) -> bool:
        """Embed every tile of the shown large slice in a worker (progress, Cancel); False
        when the shown slice is not tiled."""
        host = self.host
        if host.source is None or host.predictor is None or not self.use_tiles(host._shown_index()):
            return False
        if self.worker is None:
            self._cancel = threading.Event()
            self.worker = create_worker(self.tiled.iter_embed, cancel=self._cancel,
                                        _start_thread=False, _ignore_errors=True)
            # Results come through the event loop: dropped if the viewer closed meanwhile.
            self.worker.yielded.connect(
                alive_only(self, lambda r: self.progress.setValue(int(100 * r.fraction))))
            self.worker.finished.connect(alive_only(self, self._embedding_finished))
            self.worker.errored.connect(alive_only(self, self._embedding_failed))
            self._set_busy(True)
            self.worker.start()
        if wait:
            self.wait()
        return True

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def detach(self) -> None:
        """The image is gone: stop embedding its tiles and drop them."""
        self._drop_tiles()

    def wait(self, timeout: float = 600.0) -> None:
        end = time.monotonic() + timeout
        while self.worker is not None:
            if time.monotonic() > end:
                raise TimeoutError("The tiles are still being embedded.")
            QApplication.processEvents()
            time.sleep(0.002)

    def tile_settings(self) -> tuple[int, int, int]:
        """(threshold, tile, halo) in pixels, with the automatic values resolved."""
        return self.tiling.settings().resolve(self._input_size())

    # ============================ internals ================================================
    def _input_size(self) -> int:
        predictor = self.host.predictor
        return model_input_size(predictor.model) if predictor is not None else 1024

    def _tiles(self, source):
        """The tiles of the image's slices (the engine's rule), or None: not tiled."""
        return tiles_for(self.host.predictor.model, source.spatial_shape[-2:],
                         self.tiling.settings())

    def _start_tiles(self, source, index, key) -> None:
        self.tiled = predictor_for(self.host.predictor.model, source.spatial_shape[-2:],
                                   self.tiling.settings(), cache=self.host.cache)
        raw = source.read(index)
        if source.channel_first:  # per-channel percentiles: the tiles get the slice's mapping
            self.tiled.set_image(source.to_rgb(raw), None, digest=key.slice_digest,
                                 normalisation=key.normalisation)
        else:
            self.tiled.set_image(raw, source.layer.contrast_limits, digest=key.slice_digest,
                                 normalisation=key.normalisation)
        self.session = InteractiveSession(self.tiled,
                                          refine_with_mask=self.host.refine_check.isChecked())
        grid = self.tiled.grid
        self.host.status_label.setText(
            f"Large slice: {grid.ny} x {grid.nx} tiles of {grid.tile} px; a tile is embedded "
            "when a prompt first reaches it (or all at once: Compute embedding).")

    def _restore_plain(self) -> None:
        host = self.host
        if _is_tiled(host.session) and self._plain_session is not None:
            host._forget_objects()
            host.session = self._plain_session
            host._embedded_key = None

    def _drop_tiles(self) -> None:
        self.cancel()
        self._tiled_for = None
        self._restore_plain()

    def _tiling_changed(self) -> None:
        self._tiled_for = None  # the next decode sets the tiles up again

    def _apply_store(self) -> None:
        folder = self.folder_edit.text().strip()
        enabled = self.store_check.isChecked() and bool(folder)
        if not enabled:
            self.store = None
        elif self.store is None or self.store.root != Path(folder).expanduser():
            self.store = _store_for(Path(folder).expanduser())
        self.host.cache.backing_store = self.store
        self._remember()

    def _remember(self) -> None:
        source = getattr(self.host, "source", None)
        if source is None:
            return
        if self.store is not None:
            source.layer.metadata[METADATA_KEY] = str(self.store.root)
        else:
            source.layer.metadata.pop(METADATA_KEY, None)

    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.progress.setValue(0)

    def _embedding_finished(self) -> None:
        self.worker = None
        self._set_busy(False)

    def _embedding_failed(self, exc) -> None:
        if not isinstance(exc, Cancelled):
            show_error(f"Could not embed the tiles: {exc}")
        else:
            show_info("Embedding of the tiles cancelled; finished tiles are kept.")


def _is_tiled(session) -> bool:
    return isinstance(getattr(session, "predictor", None), TiledPredictor)

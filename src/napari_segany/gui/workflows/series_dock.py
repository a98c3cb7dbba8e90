"""The "Image Series" dock: the images of a folder (or a glob) annotated one after the other.

Scripting::

    dock, w = viewer.window.add_plugin_dock_widget("napari-segany", "Image Series")
    w.open("plates/", "plates_labels/")       # resumes at the first image not done; waits
    w.next(); w.previous(); w.go_to(7)        # saves the labels of the image left; waits
    w.save_now()                              # done even with no object

Each image is shown in the layer "Series image" (its data replaced, contrast limits set)
with its labels in "SegAny labels", the layer the Segment Anything and Segment Everything
docks commit into; open Segment Anything docks are pointed at both (``segany_link``).
Leaving an image saves its labels (``ImageSeries.save_labels``, a worker); coming back loads
them.  While you work, the next image is read and, when the Segment Anything dock has a
model, embedded into its cache.  Files that cannot be read are skipped with a notification.
Keys: PageDown / Shift+Right next, PageUp / Shift+Left previous.
"""
from __future__ import annotations

import threading
import weakref

from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QWidget

from ...engine.errors import Cancelled, SegAnyError
from ...engine.workflows.series import ImageSeries
from ..interactive.keybindings import unbind_shortcuts
from ..shared.labels_io import LABELS_NAME
from ..shared.qt_helpers import ShutsDownWhenClosed
from ..shared.workers import alive_only, process_events_until
from .common import replace_labels
from .segany_link import BUSY, embedder, point_segany_at, prefetch_job
from .series_io import LoadedImage, load_job, save_job
from .series_ui import build_controls, show_list

IMAGE_NAME = "Series image"
MARK = "napari_segany_series"  # metadata of the dock's layers
RETRY_MS = 1000  # the next embedding waits while the Segment Anything dock embeds
KEYS = {"PageDown": "next", "Shift-Right": "next", "PageUp": "previous", "Shift-Left": "previous"}


class ImageSeriesWidget(ShutsDownWhenClosed, QWidget):
    """Open a series, go from image to image, save and reload labels, prefetch the next."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.closed = False
        self.series: ImageSeries | None = None
        self.index: int | None = None  # the image shown
        self.images: dict[int, LoadedImage] = {}  # read ahead, or left with unsaved labels
        self.saving: dict[int, object] = {}  # index -> save worker
        self.unsaved: set[int] = set()  # images whose last save failed (kept in memory)
        self.embedded: set[int] = set()  # next images embedded for the Segment Anything dock
        self._target: tuple[int, int] | None = None  # (index, direction) asked for
        self._loader = None
        self._prefetch = None  # (index, worker, cancel event)
        self.image_layer = self.labels_layer = None
        build_controls(self)
        self._bind_keys()

    # ============================ public API ===============================================
    def open(self, source=None, output=None, wait: bool = True) -> None:
        """Open a series (a folder, a glob or a list of files; labels into ``output``) at
        the first image not done."""
        if source is not None:
            self.source_edit.setText(str(source))
        if output is not None:
            self.output_edit.setText(str(output))
        self._open_clicked()
        if wait:
            self.wait()

    def next(self, wait: bool = True) -> None:
        self._go(+1, wait)

    def previous(self, wait: bool = True) -> None:
        self._go(-1, wait)

    def go_to(self, index: int, wait: bool = True) -> None:
        if self.series is not None:
            self._request(int(index), 0)
            if wait:
                self.wait()

    def save_now(self, wait: bool = True) -> None:
        """Save the shown image's labels now, even empty (the image counts as done)."""
        if self.index is not None:
            self._save(self.index, force=True)
            if wait:
                self.wait()

    @property
    def busy(self) -> bool:
        return self._loader is not None or bool(self.saving) or self._target is not None

    def wait(self, timeout: float = 120.0) -> None:
        """Process events until the image asked for is shown and the saves are written."""
        process_events_until(lambda: not self.busy, timeout, "The Image Series dock")

    def wait_prefetch(self, timeout: float = 120.0) -> None:
        process_events_until(lambda: self._loader is None and self._prefetch is None, timeout,
                             "The next image's embedding")

    # ============================ opening ==================================================
    def _open_clicked(self) -> None:
        source, output = self.source_edit.text().strip(), self.output_edit.text().strip()
        if not source or not output:
            show_error("Choose the images (a folder or a pattern such as plates/*.tif) and an "
                       "output folder for the labels.")
            return
        try:
            series = ImageSeries(source, output)
        except (SegAnyError, OSError) as exc:
            show_error(f"Cannot open the series: {exc}")
            return
        self._leave()
        self.series, self.index, self.images = series, None, {}
        self.unsaved.clear()
        self.embedded.clear()
        if series.skipped:
            show_info(f"{len(series.skipped)} file(s) of {source} are not images: skipped.")
        self._show_list()
        self._request(series.resume_index(), +1)

    def _leave(self) -> None:
        """Before another series: save the shown image, stop reading ahead."""
        if self.index is not None:
            self._save(self.index)
        self._cancel_prefetch()
        self._target = None

    # ============================ navigation ===============================================
    def _go(self, step: int, wait: bool) -> None:
        if self.series is None or self.index is None:
            return
        where = self._target[0] if self._target else self.index
        index = (self.series.next_index if step > 0 else self.series.previous_index)(where)
        if index is None:
            show_info("This is the last image." if step > 0 else "This is the first image.")
            return
        self._request(index, step)
        if wait:
            self.wait()

    def _request(self, index: int, step: int) -> None:
        """Show image ``index``; if it cannot be read, go on in direction ``step`` (0: stop)."""
        if not 0 <= index < len(self.series) or index == self.index:
            return
        self._target = (index, step)
        self._advance()

    def _advance(self) -> None:
        """Show the image asked for if it is read; otherwise read it; when idle, read ahead."""
        if self._target is not None and self._target[0] in self.images:
            self._show(self.images[self._target[0]])
            self._target = None
        if self._loader is not None or self.series is None:
            return
        if self._target is not None:
            self._load(self._target[0])
            return
        ahead = self.series.next_index(self.index) if self.index is not None else None
        if ahead is None:
            return
        if self._prefetch is not None and self._prefetch[0] != ahead:
            self._cancel_prefetch()  # the user moved on: another image is next now
        if ahead not in self.images:
            self._load(ahead)
        elif ahead not in self.embedded and self._prefetch is None:
            self._start_prefetch(self.images[ahead])

    def _load(self, index: int) -> None:
        series = self.series
        worker = create_worker(load_job, series, index, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(alive_only(self, lambda loaded: self._loaded(series, loaded)))
        worker.errored.connect(alive_only(self, lambda exc: self._load_failed(series, index, exc)))
        worker.finished.connect(alive_only(self, self._load_finished))
        self._loader = worker
        self.status_label.setText(f"Reading {series.images[index].name}…")
        worker.start()

    def _loaded(self, series, loaded: LoadedImage) -> None:
        if series is self.series:
            self.images[loaded.index] = loaded

    def _load_failed(self, series, index: int, exc: Exception) -> None:
        if series is not self.series:
            return
        show_warning(f"Skipped {series.images[index].name}: {exc}")
        self._show_list()
        if self._target is not None and self._target[0] == index:
            index_, step = self._target
            after = None if step == 0 else (series.next_index if step > 0 else
                                            series.previous_index)(index_)
            self._target = None if after is None else (after, step)
            if after is None and self.index is None:
                show_error("No image of the series can be read.")

    def _load_finished(self, *_) -> None:
        self._loader = None
        self.status_label.setText("")
        self._advance()

    # ============================ showing ==================================================
    def _show(self, loaded: LoadedImage) -> None:
        if self.index is not None and self._labels_alive():
            self.images[self.index].labels = self.labels_layer.data
            self._save(self.index)
        self._put_labels(loaded.labels_or_empty())
        self._put_image(loaded)
        self.index = loaded.index
        self._forget_far_images()
        point_segany_at(self.viewer, self.image_layer, self.labels_layer)
        self._show_list()
        if loaded.note:
            show_warning(loaded.note)

    def _put_labels(self, labels) -> None:
        if not self._labels_alive():
            self.labels_layer = self._ours(LABELS_NAME)  # a closed dock's, adopted
        if self._labels_alive():
            replace_labels(self.labels_layer, labels)  # no undo into another image
            return
        self._make_room_for_labels()
        self.labels_layer = self.viewer.add_labels(labels, name=LABELS_NAME, metadata={MARK: True})

    def _put_image(self, loaded: LoadedImage) -> None:
        layer = self.image_layer
        if layer is None or layer not in self.viewer.layers:
            layer = self._ours(IMAGE_NAME)
        fits = (layer is not None and layer.rgb == loaded.rgb
                and layer.data.ndim == loaded.pixels.ndim)
        if fits:
            new_shape = tuple(layer.data.shape) != tuple(loaded.pixels.shape)
            layer.data = loaded.pixels
        else:
            if layer is not None:
                self.viewer.layers.remove(layer)
            layer = self.viewer.add_image(loaded.pixels, name=IMAGE_NAME, rgb=loaded.rgb,
                                          metadata={MARK: True})
            self._move_labels_up()
            new_shape = True
        self.image_layer = layer
        layer.contrast_limits_range = loaded.data_range
        layer.contrast_limits = loaded.limits
        layer.metadata["path"] = str(self.series.images[loaded.index])
        if new_shape:
            self.viewer.reset_view()

    def _ours(self, name: str):
        """The layer ``name`` if a series dock made it (its mark), else None."""
        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        return layer if layer is not None and layer.metadata.get(MARK) else None

    def _make_room_for_labels(self) -> None:
        """The series' labels take the name both segmentation docks commit into; a layer of
        the user's with that name is renamed, never overwritten."""
        if LABELS_NAME in self.viewer.layers:
            theirs = self.viewer.layers[LABELS_NAME]
            theirs.name = f"{LABELS_NAME} (before the series)"
            show_info(f"Your layer {LABELS_NAME!r} was renamed {theirs.name!r}: the series saves "
                      f"the layer {LABELS_NAME!r}.")

    def _move_labels_up(self) -> None:
        if self._labels_alive():
            layers = self.viewer.layers
            layers.move(layers.index(self.labels_layer), len(layers))

    def _labels_alive(self) -> bool:
        return self.labels_layer is not None and self.labels_layer in self.viewer.layers

    def _forget_far_images(self) -> None:
        near = {self.index, self.series.next_index(self.index),
                self.series.previous_index(self.index)} | self.unsaved | set(self.saving)
        self.images = {i: v for i, v in self.images.items() if i in near}
        self.embedded &= set(self.images)

    def _show_list(self) -> None:
        show_list(self)

    # ============================ saving ===================================================
    def _save(self, index: int, force: bool = False) -> None:
        labels = self.labels_layer.data if (index == self.index and self._labels_alive()) else \
            self.images[index].labels if index in self.images else None
        if labels is None:
            return
        series = self.series
        worker = create_worker(save_job, series, index, labels, force, _start_thread=False,
                               _ignore_errors=True)
        worker.returned.connect(alive_only(self, lambda path: self._saved(series, index, path)))
        worker.errored.connect(alive_only(self, lambda exc: self._save_failed(series, index, exc)))
        worker.finished.connect(lambda *_: self._save_finished(index, worker))
        self.saving[index] = worker
        worker.start()

    def _save_finished(self, index: int, worker) -> None:
        if self.saving.get(index) is worker:  # not a later save of the same image
            del self.saving[index]

    def _saved(self, series, index: int, path) -> None:
        self.unsaved.discard(index)
        if series is self.series:
            self._show_list()

    def _save_failed(self, series, index: int, exc: Exception) -> None:
        self.unsaved.add(index)
        show_error(f"Could not save the labels of {series.images[index].name}: {exc}. They are "
                   "kept in memory: come back to it and press Save now.")

    def _save_on_close(self) -> None:
        """Closing: the shown image's labels are written now (a short wait at the end)."""
        if self.series is None or self.index is None or not self._labels_alive():
            return
        try:
            job = save_job(self.series, self.index, self.labels_layer.data)
            while True:
                next(job)
        except StopIteration:
            pass
        except (SegAnyError, OSError) as exc:
            show_error(f"Could not save the labels of the last image: {exc}")

    # ============================ reading ahead: the next embedding ========================
    def _start_prefetch(self, loaded: LoadedImage) -> None:
        predictor, cache, why = embedder(self.viewer, loaded.spatial_shape)
        if predictor is None:
            self.next_label.setText(f"Next image read; not embedded ahead ({why}).")
            if why == BUSY:  # try again once the Segment Anything dock is free
                QTimer.singleShot(RETRY_MS, alive_only(self, self._advance))
            return
        cancel = threading.Event()
        worker = create_worker(prefetch_job, predictor, cache, loaded.pixels, loaded.limits,
                               cancel, _start_thread=False, _ignore_errors=True)
        index = loaded.index
        worker.returned.connect(alive_only(self, lambda key: self._prefetched(index)))
        worker.errored.connect(alive_only(self, self._prefetch_failed))
        worker.finished.connect(alive_only(self, self._prefetch_finished))
        self._prefetch = (index, worker, cancel)
        self.next_label.setText("Embedding the next image in the background…")
        worker.start()

    def _prefetched(self, index: int) -> None:
        self.embedded.add(index)
        self.next_label.setText("Next image: read and embedded.")

    def _prefetch_failed(self, exc: Exception) -> None:
        if not isinstance(exc, Cancelled):  # cancelled: the user moved on, nothing to say
            self.next_label.setText(f"The next image could not be embedded ahead: {exc}")

    def _prefetch_finished(self, *_) -> None:
        self._prefetch = None

    def _cancel_prefetch(self) -> None:
        if self._prefetch is not None:
            self._prefetch[2].set()
            self._prefetch = None

    # ============================ keys, closing ============================================
    def _bind_keys(self) -> None:
        ref = weakref.ref(self)
        for key, method in KEYS.items():
            self.viewer.bind_key(key, _key_handler(ref, method), overwrite=True)

    def _shut_down(self) -> None:
        if self.closed:
            return
        self._save_on_close()
        self.closed = True
        self._cancel_prefetch()
        unbind_shortcuts(self, self.viewer)


def _key_handler(ref, method: str):
    def run(_viewer=None):
        widget = ref()
        if widget is not None and not widget.closed:
            getattr(widget, method)(wait=False)

    run.__name__ = f"segany_series_{method}"
    run.__doc__ = f"Image series: {method} image"
    run.segany_widget = ref  # for keybindings.unbind_shortcuts
    return run

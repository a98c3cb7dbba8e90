"""What the workflow docks share: layer pickers that follow the viewer, one job at a time in
a napari worker (progress bar, Cancel), frame-by-frame progress for blocking engine calls,
and undo-aware writes into Labels layers (in steps, :mod:`.pixel_writes`).

Long work runs in a worker as a job (a generator yielding ``Progress`` and returning its
result, see ``engine/progress.py``).  Cancel sets an event; the job stops at its next report
and closes itself in the worker (``everything_jobs.stop_on_cancel``), so nothing is written.
Engine functions without a generator form (``link_slices``, ``track_labels``,
``write_ctc``) read their labels a frame at a time: :class:`FrameReader` hands them the
frames, counts them for the progress bar and stops them at the next frame once cancelled.
"""
from __future__ import annotations

import threading
import time

import numpy as np
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QApplication, QComboBox, QWidget

from ...engine.errors import Cancelled, SegAnyError
from ...engine.progress import Progress
from ..everything.jobs import SelfClosingWorker, stop_on_cancel
from ..shared.job_progress import JobProgress
from ..shared.labels_io import clear_history
from ..shared.qt_helpers import set_items
from ..shared.workers import WorkerFailure, alive_only
from .pixel_writes import PixelWrite, nothing_to_write

POLL_S = 0.05  # how often a blocking call's progress is reported


class LayerPicker(QComboBox):
    """The viewer's layers of ``kind`` that pass ``accept(layer)``, kept current as layers are
    added, removed or renamed (and when the list opens: a layer's data may have changed).
    ``none_text`` adds a first entry meaning "no layer"."""

    def __init__(self, viewer, kind, accept=None, none_text: str | None = None, parent=None):
        super().__init__(parent)
        self.viewer, self.kind, self.accept, self.none_text = viewer, kind, accept, none_text
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        viewer.layers.events.inserted.connect(self.refresh)
        viewer.layers.events.removed.connect(self.refresh)
        viewer.layers.events.connect(self._on_layer_event)
        self.refresh()

    def refresh(self, *_) -> None:
        names = [layer.name for layer in self.viewer.layers if self._fits(layer)]
        set_items(self, ([self.none_text] if self.none_text else []) + names)

    def layer(self):
        """The chosen layer, or None."""
        name = self.currentText()
        layer = self.viewer.layers[name] if name and name in self.viewer.layers else None
        return layer if layer is not None and self._fits(layer) else None

    def choose(self, layer) -> None:
        """Show ``layer`` (a layer or its name) as the choice."""
        self.refresh()
        self.setCurrentText(layer if isinstance(layer, str) else layer.name)

    def showPopup(self) -> None:  # noqa: N802 (Qt's name)
        self.refresh()
        super().showPopup()

    def disconnect_viewer(self) -> None:
        self.viewer.layers.events.inserted.disconnect(self.refresh)
        self.viewer.layers.events.removed.disconnect(self.refresh)
        self.viewer.layers.events.disconnect(self._on_layer_event)

    def _fits(self, layer) -> bool:
        return isinstance(layer, self.kind) and (self.accept is None or self.accept(layer))

    def _on_layer_event(self, event) -> None:
        if event.type == "name":
            self.refresh()


class JobPanel(QWidget):
    """A progress bar and a Cancel button for the one job of a dock.

    ``host`` is the dock: worker results reach ``on_done`` only while it is open
    (``alive_only``, its ``closed`` attribute)."""

    def __init__(self, host, parent=None):
        super().__init__(parent)
        self.host = host
        self.worker = None
        self.writing: PixelWrite | None = None
        self._cancel: threading.Event | None = None
        self._what = ""
        self._bar = JobProgress(1000)  # the panel itself is shown only while a job runs
        self.progress, self.cancel_button = self._bar.bar, self._bar.cancel_button
        row = self._bar.row()
        row.setContentsMargins(0, 0, 0, 0)
        self.setLayout(row)
        self.cancel_button.clicked.connect(self.cancel)
        self.setVisible(False)

    @property
    def busy(self) -> bool:
        return self.worker is not None or self.writing is not None

    def start(self, job, what: str, on_done, on_failed=None) -> bool:
        """Run ``job`` (a generator) in a worker; ``on_done(result)`` on the main thread.
        False (and a notification) while another job of the dock runs."""
        if self.busy:
            show_info(f"{self._what} is still running: wait for it or Cancel.")
            job.close()
            return False
        self._what, self._cancel = what, threading.Event()
        worker = create_worker(_guarded, job, self._cancel, _start_thread=False,
                               _ignore_errors=True, _worker_class=SelfClosingWorker)
        worker.cancel_event = self._cancel
        worker.yielded.connect(alive_only(self.host, self._show))
        worker.returned.connect(alive_only(self.host, on_done))
        worker.errored.connect(alive_only(self.host, on_failed or self._failed))
        worker.finished.connect(self._finished)
        self.worker = worker
        self._show(Progress(0, 1, f"{what}…"))
        self.setVisible(True)
        worker.start()
        return True

    def write(self, layer, indices: tuple, values, on_end) -> None:
        """Write ``values`` at ``indices`` into the Labels ``layer`` in steps, as one undo step
        (Ctrl+Z on the layer undoes it all; Cancel puts back what was written); the dock
        stays busy meanwhile.  ``on_end(n)``: the number of pixels written (0: nothing to
        write), None when cancelled or failed.  Called from a job's ``on_done``."""
        if nothing_to_write(indices):
            on_end(0)
            return
        what = self._what

        def ended(n: int | None) -> None:
            self.writing = None
            if not self.busy and not getattr(self.host, "closed", False):
                self.setVisible(False)
            on_end(n)

        self._show(Progress(0, 1, f"{what}: writing…"))
        self.setVisible(True)
        self.writing = PixelWrite(
            layer, indices, values, ended, lambda exc: report_failure(what, exc),
            lambda done, total: self._show(Progress(done, total, f"{what}: writing")), self)

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
        if self.writing is not None:
            show_info(f"{self._what} cancelled; nothing was written.")
            self.writing.cancel()

    def wait(self, timeout: float = 600.0) -> None:
        """Keep the event loop running until the job has finished (scripts, tests)."""
        end = time.monotonic() + timeout
        while self.busy:
            if time.monotonic() > end:
                raise TimeoutError(f"{self._what} is still running after {timeout:.0f} s.")
            QApplication.processEvents()
            time.sleep(0.002)
        QApplication.processEvents()

    def _show(self, report: Progress) -> None:
        self._bar.show_fraction(report.fraction)
        self.progress.setFormat(f"{report.message} %p%" if report.message else "%p%")

    def _failed(self, exc: Exception) -> None:
        report_failure(self._what, exc)

    def _finished(self, *_) -> None:
        self.worker, self._cancel = None, None
        if not self.busy and not getattr(self.host, "closed", False):
            self.setVisible(False)


def report_failure(what: str, exc: Exception) -> None:
    """Say why a job stopped: cancelled, a user error (its message says what to do), or a bug."""
    if isinstance(exc, Cancelled):
        show_info(f"{what} cancelled; nothing was written.")
    elif isinstance(exc, (SegAnyError, ValueError, OSError)):
        show_error(f"{what}: {exc}")
    else:
        show_error(f"{what} failed: {exc!r}")


def _guarded(job, cancel: threading.Event):
    """``job`` stopped at its first report after ``cancel``; torch's RuntimeErrors re-typed
    (superqt takes a RuntimeError from a generator for a deleted worker and drops it)."""
    try:
        return (yield from stop_on_cancel(job, cancel))
    except RuntimeError as exc:
        raise WorkerFailure(str(exc)) from exc


class FrameReader:
    """An (N, ...) array as a blocking engine function reads it, one frame (index along the
    first axis) at a time: counts the frames read, and raises Cancelled at the next read once
    ``cancel`` is set.  ``shape``, ``dtype`` and ``ndim`` are the array's."""

    def __init__(self, array):
        self.array = array
        self.shape = tuple(int(s) for s in array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.read = 0
        self.cancel = threading.Event()

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        if self.cancel.is_set():
            raise Cancelled("cancelled; nothing was written")
        first = index[0] if isinstance(index, tuple) else index
        if isinstance(first, (int, np.integer)):
            self.read = max(self.read, int(first) + 1)
        return np.asarray(self.array[index])


def blocking_job(call, reader: FrameReader, what: str):
    """A job running ``call()`` (which reads ``reader``) in a helper thread: yields Progress
    as frames are read; closing the job cancels the call at its next frame and waits for it."""
    box: dict = {}
    done = threading.Event()

    def target():
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the worker thread below
            box["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=target, name=f"segany {what}", daemon=True)
    thread.start()
    total = max(len(reader), 1)
    try:
        while not done.wait(POLL_S):
            yield Progress(reader.read, total, f"{what}: frame {reader.read}/{len(reader)}")
    finally:
        if not done.is_set():
            reader.cancel.set()
        thread.join()
    if "error" in box:
        raise box["error"]
    yield Progress(total, total, what)
    return box["value"]


def changed_pixels(old, new: np.ndarray) -> tuple[tuple, np.ndarray]:
    """Indices and new values of the pixels where ``new`` differs from ``old`` (computed in a
    worker; :meth:`JobPanel.write` then writes them on the main thread)."""
    where = np.nonzero(np.asarray(old) != new)
    return where, new[where]


def replace_labels(layer, data) -> None:
    """Give a Labels layer new data *and* a fresh undo history (see ``clear_history``)."""
    layer.data = data
    clear_history(layer)


def spatial_ndim(layer) -> int:
    """Spatial axes of an image or labels layer (RGB's colour axis left out)."""
    return layer.data.ndim - int(bool(getattr(layer, "rgb", False)))

"""The "Propagate" panel: follow committed objects through z (stacks) or t (time series).

Two methods: *slice by slice* (one object, any SAM-family model) and *SAM 2 memory* (every
object of the shown slice, corrections by clicks on any slice; a SAM 2 model).  The
controls (method, axis, direction, range in world units, object, stop rules) and the run in
a napari worker (progress bar, Cancel); what a run checks, runs and writes is in
:mod:`.propagation_run` and :mod:`.memory_run`, the axes' names and units in
:mod:`.propagation_axes`.  The host (the Segment Anything dock) provides ``viewer``,
``source`` (ImageSource), ``predictor``, ``cache``, ``writer`` (its target Labels layer),
``image_session`` and ``prompt_preview``.
"""
from __future__ import annotations

import numpy as np
from napari.qt.threading import create_worker
from qtpy.QtWidgets import QWidget

from ...engine.errors import Cancelled, SegAnyError
from ...engine.propagation import StopRules
from ..shared import notify
from ..shared.labels_io import UndoStep, write_in_chunks
from ..shared.steps import TimedSteps
from ..shared.workers import alive_only, process_events_until
from . import memory_run
from . import propagation_run as runs
from .propagation_controls import METHODS, build_controls
from .propagation_axes import axis_labels, index_of, world

#: Controls only the slice-by-slice method reads.
SLICE_ONLY = ("score_spin", "area_spin", "past_empty_check")


class PropagationPanel(QWidget):
    """Direction, range, stop thresholds, Propagate / Cancel, progress."""

    def __init__(self, host, parent=None):
        super().__init__(parent)
        self.host = host
        self.worker = None
        self.last_result = None
        self._run: runs.PropagationRun | None = None  # the running propagation
        self._cancel_reason = ""  # why it was cancelled, when not by the user
        self._source = None  # the image the axis/range controls were built for
        self._watched = None  # the Labels layer whose writes tell the last object id
        self.last_written_id = 0
        self.writing: TimedSteps | None = None  # the result being written, in steps
        self._step: UndoStep | None = None
        self._build_ui()

    # ============================ public API ==============================================
    def propagate(self, object_id: int | None = None, wait: bool = False,
                  method: str | None = None):
        """Start propagating the object (id, or the panel's choice) from the shown slice;
        ``method``: "slices" or "memory" (SAM 2: every object; ``object_id`` is the object
        the clicks on the shown slice correct), default the panel's choice.

        Returns the worker, or None when nothing could start (a notification says why).
        ``wait`` processes Qt events until the result is written.
        """
        if self.busy:
            notify.info("A propagation is already running.")
            return None
        if method is not None:
            self.set_method(method)
        try:
            self.sync()
            settings = self.settings(object_id)
            run = (memory_run.prepare(self.host, settings) if settings.method == runs.MEMORY
                   else runs.prepare(self.host, settings, self.last_written_id))
        except (SegAnyError, ValueError) as exc:
            notify.error(f"Cannot propagate: {exc}")
            return None
        self._start(run)
        if wait:
            self.wait()
        return self.worker

    def settings(self, object_id: int | None = None) -> runs.Settings:
        first, last = self._index_range()
        rules = StopRules(min_score=self.score_spin.value(), max_area_ratio=self.area_spin.value(),
                          stop_on_empty=not self.past_empty_check.isChecked())
        chosen = self.object_spin.value() if object_id is None else object_id
        return runs.Settings(self.axis_combo.currentIndex(), self.direction_combo.currentData(),
                             first, last, rules, chosen, not self.overwrite_check.isChecked(),
                             self.method_combo.currentData())

    def set_method(self, method: str) -> None:
        """"slices" (one object, slice by slice) or "memory" (SAM 2's memory)."""
        if method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}; got {method!r}.")
        self.method_combo.setCurrentIndex(self.method_combo.findData(method))

    def cancel(self) -> None:
        """Stop the running propagation; nothing is written (what was, is put back)."""
        if self.writing is not None:  # the worker is done: the writes are under way
            self.writing.stop()
            self._step.abort()
            self.writing = None
            self._finish()
            self._say("Cancelled; nothing was written.")
        elif self._run is not None:
            self._run.cancel.set()

    def layer_removed(self, layer) -> None:
        """The host saw ``layer`` leave the viewer: a run reading or writing it stops."""
        run = self._run
        if run is None or run.cancel.is_set():
            return
        if layer == run.image or layer == run.layer:  # == : proxies
            kind = "image" if layer == run.image else "Labels layer"
            self._cancel_reason = f"The {kind} {layer.name!r} was removed"
            self.cancel()

    def release(self) -> None:
        """Stop watching the Labels layer (the host widget is closed)."""
        if self._watched is not None:
            self._watched.events.paint.disconnect(self._on_paint)
            self._watched.events.data.disconnect(self.refresh)
            self._watched = None

    @property
    def busy(self) -> bool:
        return self.worker is not None or self.writing is not None

    def wait(self, timeout: float = 600.0) -> None:
        process_events_until(lambda: not self.busy, timeout, "The propagation", poll=0.005)

    def sync(self) -> None:
        """Rebuild the axis choices and the range for the host's current image (cheap)."""
        writer = self.host.writer
        if writer is not None and writer.layer is not None:
            self._watch(writer.layer)
        source = self.host.source
        if source is not self._source:
            self._source = source
            self._rebuild_axes(source)
            self._say("")  # the last run's outcome was another image's
        self.refresh()

    def refresh(self, *_) -> None:
        """Say what the panel can do now; its button is enabled exactly when it can act."""
        can_act, text = self.readiness()
        self.ready_label.setText(text)
        self.propagate_button.setEnabled(can_act and not self.busy)

    def readiness(self) -> tuple[bool, str]:
        """(whether Propagate can start now, what it would do or what it needs)."""
        source = self.host.source
        if source is None:
            return False, "No image: pick one above."
        try:
            runs.check_ready(self.host)
        except SegAnyError as exc:
            return False, str(exc)
        if self.method_combo.currentData() == runs.MEMORY:
            return memory_run.readiness(self.host, self.settings())
        axis = self.axis_combo.currentIndex()
        names = axis_labels(source)
        first, last = self._index_range()
        where = f"along {names[axis]} (slices {first}–{last})"
        index = source.index_from_world(self.host.viewer.dims.point)
        layer = self.host.writer.layer
        try:
            value = runs.object_id(layer, index, self.object_spin.value(), self.last_written_id)
        except (SegAnyError, IndexError, ValueError):
            return False, f"Commit an object on this slice (C), then propagate it {where}."
        if not (np.asarray(layer.data[index]) == value).any():
            return False, (f"Object {value} is not on this slice ({names[axis]} = {index[axis]}): "
                           "go to a slice where it is.")
        kept = [f"{names[i]} stays at {index[i]}" for i in range(source.n_leading) if i != axis]
        return True, (f"Propagates object {value} from {names[axis]} = {index[axis]} {where}"
                      + (f"; {', '.join(kept)}" if kept else "") + ".")

    def _rebuild_axes(self, source) -> None:
        self.axis_combo.blockSignals(True)
        self.axis_combo.clear()
        if source is not None:
            self.axis_combo.addItems(axis_labels(source)[: source.n_leading])
            self.axis_combo.setCurrentIndex(max(0, source.n_leading - 1))  # z of T, Z, Y, X
        self.axis_combo.blockSignals(False)
        self.axis_combo.setEnabled(source is not None and source.n_leading > 1)
        self._reset_range()

    # ============================ UI =======================================================
    def _build_ui(self) -> None:
        build_controls(self)
        self._set_busy(False)
        self.axis_combo.currentIndexChanged.connect(lambda _: self._reset_range())
        self.from_spin.valueChanged.connect(lambda _: self._show_range())
        self.to_spin.valueChanged.connect(lambda _: self._show_range())
        self.object_spin.valueChanged.connect(self.refresh)
        self.method_combo.currentIndexChanged.connect(lambda _: self._method_changed())
        self.propagate_button.clicked.connect(lambda: self.propagate())
        self.cancel_button.clicked.connect(self.cancel)

    def _reset_range(self) -> None:
        source, axis = self.host.source, self.axis_combo.currentIndex()
        for spin in (self.from_spin, self.to_spin):
            spin.setEnabled(source is not None and axis >= 0)
        if source is None or axis < 0:
            self.range_label.setText("no z or t axis to walk along")
            self.refresh()
            return
        first, last = (world(source, axis, i) for i in (0, source.spatial_shape[axis] - 1))
        step = abs(source.spatial_scale[axis]) or 1.0
        for spin, value in ((self.from_spin, first), (self.to_spin, last)):
            spin.blockSignals(True)
            spin.setDecimals(3 if step < 1 else 2)
            spin.setRange(min(first, last), max(first, last))
            spin.setSingleStep(step)
            spin.setValue(value)
            spin.blockSignals(False)
        self._show_range()

    def _show_range(self) -> None:
        first, last = self._index_range()
        self.range_label.setText(f"slices {first}–{last} (world units along the axis)")
        self.refresh()

    def _index_range(self) -> tuple[int, int]:
        source, axis = self.host.source, self.axis_combo.currentIndex()
        if source is None or axis < 0:
            return 0, 0
        ends = sorted(index_of(source, axis, s.value()) for s in (self.from_spin, self.to_spin))
        return ends[0], ends[1]

    def _method_changed(self) -> None:
        memory = self.method_combo.currentData() == runs.MEMORY
        for name in SLICE_ONLY:
            getattr(self, name).setEnabled(not memory)
        self.object_spin.setSpecialValueText("selected label" if memory else "last committed")
        self.object_spin.setToolTip("The object the clicks on the shown slice correct"
                                    if memory else "The object to propagate")
        self.refresh()

    def _set_busy(self, busy: bool) -> None:
        self.job_progress.set_busy(busy)
        self.refresh()

    # ============================ running ==================================================
    def _start(self, run: runs.PropagationRun) -> None:
        worker = create_worker(runs.job_and_writes, run, _start_thread=False, _ignore_errors=True)
        # Results come through the event loop: dropped if the viewer closed meanwhile.
        worker.yielded.connect(alive_only(self, self._on_progress))
        worker.returned.connect(alive_only(self, lambda out: self._on_done(*out, run)))
        worker.errored.connect(alive_only(self, lambda exc: self._on_error(exc, run)))
        self.worker, self._run, self._cancel_reason = worker, run, ""
        self._set_busy(True)
        self._say(run.start_text)
        worker.start()

    def _on_progress(self, report) -> None:
        self.job_progress.show(report)

    def _on_done(self, result, writes, run) -> None:
        self.worker = None
        self.last_result = result
        refusal = runs.write_refusal(self.host.viewer, run)
        if refusal is None and writes is None:  # its shape changed during the run, and back
            refusal = ("Nothing was written.", f"The data of {run.layer.name!r} was replaced "
                       "during the propagation: nothing was written. Propagate again.")
        if refusal is not None:
            self._finish()
            run.finished(result, self.host, written=False)
            self._say(refusal[0])
            notify.warning(refusal[1])
            return
        self._step = UndoStep(run.layer)  # one Ctrl+Z undoes the whole propagation
        self.writing = TimedSteps(write_in_chunks(self._step, *writes),
                                  lambda: self._written(result, run),
                                  lambda exc: self._write_failed(exc, result, run), self)

    def _written(self, result, run) -> None:
        self._step.close()
        self.writing = None
        self._finish()
        run.finished(result, self.host, written=True)
        axis = axis_labels(self.host.source)[run.axis] if self.host.source else f"axis {run.axis}"
        status, note = run.outcome(result, axis)
        self._say(status)
        notify.info(note)

    def _write_failed(self, exc: Exception, result, run) -> None:
        self._step.abort()
        self.writing = None
        self._finish()
        run.finished(result, self.host, written=False)
        self._say("The propagation failed; nothing was written.")
        notify.error(f"The propagation failed: {exc}")

    def _on_error(self, exc: Exception, run) -> None:
        self._finish()
        if isinstance(exc, Cancelled) or run.cancel.is_set():  # e.g. its image closed under it
            reason = f"{self._cancel_reason}: p" if self._cancel_reason else "P"
            self._say("Cancelled; nothing was written.")
            notify.info(f"{reason}ropagation cancelled; nothing was written.")
            return
        self._say("The propagation failed; nothing was written.")
        notify.error(f"The propagation failed: {exc}")

    def _say(self, text: str) -> None:
        """The outcome line (hidden while empty: it takes no room in the dock)."""
        self.status_label.setText(text)
        self.status_label.setVisible(bool(text))

    def _finish(self) -> None:
        self.worker, self._run = None, None
        self._set_busy(False)

    def _watch(self, layer) -> None:
        """Remember the ids written into ``layer`` (commits, painting): the 'last' object."""
        if layer == self._watched:  # == : plugin widgets get napari's proxies of layers
            return
        if self._watched is not None:
            self._watched.events.paint.disconnect(self._on_paint)
            self._watched.events.data.disconnect(self.refresh)
        self._watched = layer
        layer.events.paint.connect(self._on_paint)
        layer.events.data.connect(self.refresh)

    def _on_paint(self, event) -> None:
        for atom in event.value:
            new = atom[-1] if isinstance(atom, tuple) else getattr(atom, "new_value", 0)
            if np.size(new) and np.max(new) > 0:
                self.last_written_id = int(np.max(new))
        self.refresh()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.sync()
        super().showEvent(event)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.cancel()
        super().closeEvent(event)


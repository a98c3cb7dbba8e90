"""Committing the Segment Everything result into the target Labels without stalling the viewer.

A commit copies what the result layer shows (each slice's filtered result) into the target
Labels with new ids after the largest in use.  With ``preserve`` only background pixels are
written, so corrections made there survive; an object wholly hidden gets no id.

* Prepared in a worker (:func:`.commit_plan.prepare_writes`): each slice's selection
  painted with the result layer's ids (3D objects: one new id across slices), the pixels to
  write and their ids, and the feature rows of the objects written.
* Checked on the main thread: a commit whose ids would not fit the layer's type is refused
  before anything is written (a commit is whole or not at all).
* Written on the main thread in short steps (:class:`~..shared.steps.TimedSteps`) inside one
  :class:`~..shared.labels_io.UndoStep`: one Ctrl+Z undoes the whole commit, all slices
  included; a cancel (or a failure) in the middle puts back what was written.  The feature
  rows are appended to the target's ``features`` once all is written (an undo takes back the
  pixels, not the rows).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject

from ..shared import notify
from ..shared.labels_io import LabelsWriter, UndoStep
from ..shared.steps import TimedSteps
from .commit_plan import CommitPlan, SliceWrite, prepare_writes, with_first_id
from .controls import set_busy
from .layers import append_features
from .linking import SHOWN
from .selection import Selected

#: Pixels per ``data_setitem`` (napari reads, compares, records and refreshes each of them).
CHUNK_PIXELS = 1 << 16


def check_ids_fit(layer, next_id: int, n_new: int) -> None:
    """ValueError, saying what to do, when ids up to next_id + n_new - 1 overflow the layer."""
    kind = np.dtype(layer.data.dtype)
    if kind.kind not in "iu" or n_new == 0:
        return
    limit, needed = int(np.iinfo(kind).max), next_id + n_new - 1
    if needed > limit:
        raise ValueError(
            f"{layer.name!r} stores {kind} ids (at most {limit}); {needed} are needed. Nothing "
            "was written. Convert it (Layer > Convert data type > uint32) or commit into a new "
            "Labels layer.")


def write_steps(step: UndoStep, writes: list[SliceWrite], first_id: int, preserve: bool):
    """The writes, CHUNK_PIXELS at a time (one step each)."""
    layer = step.layer
    for write in writes:
        for start in range(0, write.rows.size, CHUNK_PIXELS):
            part = slice(start, start + CHUNK_PIXELS)
            rows, cols = write.rows[part], write.cols[part]
            where = (*(np.full(rows.size, i, dtype=np.intp) for i in write.index), rows, cols)
            values = (write.ids[part] + first_id).astype(layer.data.dtype)
            if preserve:  # what the user painted since the preparation stays
                free = np.asarray(layer.data[where]) == 0
                where, values = tuple(axis[free] for axis in where), values[free]
            step.write(where, values)
            yield


class CommitRun(QObject):
    """One commit: its worker, then its steps; ``on_end(n or None)`` once it is over (the
    number of objects written; None: cancelled or refused, nothing written)."""

    def __init__(self, writer: LabelsWriter, items, filters, preserve: bool, linked: bool,
                 on_end: Callable[[int | None], None], on_error: Callable[[Exception], None],
                 parent=None):
        super().__init__(parent)
        self.layer, self.tracker = writer.layer, writer.tracker  # as at the start
        self.preserve, self.on_end, self.on_error = preserve, on_end, on_error
        self.step: UndoStep | None = None
        self.steps: TimedSteps | None = None
        self.n_new, self.next_id, self.table = 0, 0, {}
        self.cancelled = False
        self.worker = create_worker(prepare_writes, items, filters.settings(), filters.ranges(),
                                    self.layer.data, preserve, linked,
                                    _start_thread=False, _ignore_errors=True)
        self.worker.returned.connect(self._write)
        self.worker.errored.connect(self._failed)
        self.worker.start()

    @property
    def busy(self) -> bool:
        return self.worker is not None or self.steps is not None

    def cancel(self) -> None:
        """Stop now; what was written is put back (one step, no trace in the history)."""
        if self.cancelled or not self.busy:
            return
        self.cancelled = True
        if self.steps is not None:
            self.steps.stop()
            self.step.abort()
            self.steps = None
        if self.worker is None:
            self.on_end(None)
        # else: the worker ends on its own; _write sees the cancel and reports

    def _write(self, plan: CommitPlan) -> None:
        self.worker = None
        if self.cancelled:
            return self.on_end(None)
        layer = self.layer
        self.next_id = self.tracker.next_id(layer.data)
        self.n_new, self.table = plan.n, plan.table
        try:
            check_ids_fit(layer, self.next_id, self.n_new)
        except ValueError as exc:
            return self._failed(exc)
        self.step = UndoStep(layer)
        self.steps = TimedSteps(write_steps(self.step, plan.writes, self.next_id, self.preserve),
                                self._written, self._failed, self)

    def _written(self) -> None:
        self.steps = None
        self.step.close()
        if self.n_new:
            self.tracker.observe(self.next_id + self.n_new - 1)
        try:
            append_features(self.layer, with_first_id(self.table, self.next_id))
        except Exception as exc:  # noqa: BLE001 (the pixels are written: say so, go on)
            self.on_error(exc)
        self.on_end(self.n_new)

    def _failed(self, exc: Exception) -> None:
        self.worker = None
        if self.steps is not None or self.step is not None:
            self.steps = None
            self.step.abort()
        self.on_error(exc)
        self.on_end(None)


def request_commit(host, all_slices: bool | None, preserve: bool | None,
                   written: list) -> CommitRun | None:
    """The Segment Everything widget's commit (see its ``commit``): of the shown slice, or of
    every segmented slice, into its target Labels; None (said why) when there is nothing to
    commit or a job runs."""
    if host.source is None or not host.shown:
        notify.info("Nothing to commit: run everything mode first.")
        return None
    if host.busy_running:
        notify.info("Busy: wait for the current job to finish (or Cancel), then commit.")
        return None
    scope_all = host.scope_combo.currentIndex() != SHOWN if all_slices is None else all_slices
    indices = sorted(host.shown) if scope_all else [host.shown_index()]
    indices = [i for i in indices if i in host.shown]
    if not indices:
        notify.info("This slice has no result yet: run it first, or commit all slices.")
        return None
    target = host._target_layer()
    if target is None:
        return None
    host.writer.attach(target)
    keep = host.preserve_check.isChecked() if preserve is None else preserve
    return start_commit(host, indices, keep, written)


def start_commit(host, indices, preserve: bool, written: list) -> CommitRun:
    """The commit of slices ``indices`` into the widget's writer's layer (attached);
    ``written`` receives the number of objects written (0: none or cancelled)."""
    view, target = host.view, host.writer.layer
    items = [(view.input(i), None if i in view.stale else Selected(view.shown[i], view.rows[i]))
             for i in indices]
    set_busy(host, True)
    host.status_label.setText("Committing… (Cancel puts back what was written)")

    def ended(n: int | None) -> None:
        host.committing = None
        written.append(n or 0)
        if host.closed:
            return
        set_busy(host, False)
        if n is None:
            host.status_label.setText("Commit cancelled or refused; nothing was written.")
            return
        host.status_label.setText(f"Committed {n} objects into {target.name!r} "
                                  "(Ctrl+Z on that layer undoes the whole commit).")
        notify.info(f"Committed {n} objects into {target.name!r}.")

    return CommitRun(host.writer, items, host.filters, preserve, view.linked, ended,
                     lambda exc: notify.error(str(exc)), host)

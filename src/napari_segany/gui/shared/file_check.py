"""The weights files chosen in a dock: checked when chosen, each refusal said once.

A file typed or browsed into a Checkpoint (or Detector) field is checked at once in a worker
(:func:`napari_segany.engine.weights.check_checkpoint`: no unpickling, no network built, well
under a second); a refused file is named in one notification and under the field.  Loading
it later (Load, or a run) is refused by the same check before anything is built, without a
second notification for the same cause: :meth:`FileChecks.announce` says each refusal of a
file (as it is on disk: its size and time) once.
"""
from __future__ import annotations

import os
from typing import Callable

from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, Signal

from ...engine.weights import FileVerdict, check_checkpoint
from . import notify
from .workers import alive_only


def file_state(model: str, path) -> tuple:
    """What a verdict is about: the model and the file as it is now (size, modification)."""
    try:
        stat = os.stat(os.path.expanduser(str(path)))
        return model, os.path.abspath(os.path.expanduser(str(path))), stat.st_size, stat.st_mtime_ns
    except OSError:
        return model, str(path), None, None


class FileChecks(QObject):
    """Verdicts on the files chosen in one dock; ``checked(verdict)`` after each check.

    ``where(spec)`` says where the dock offers the model a wrong file belongs to
    ("pick it under ...")."""

    checked = Signal(object)

    def __init__(self, where: Callable, parent=None):
        super().__init__(parent)
        self.where = where
        self.closed = False
        self._verdicts: dict[tuple, FileVerdict] = {}
        self._announced: set[tuple] = set()
        self._running: set = set()

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def known(self, model: str, path) -> FileVerdict | None:
        """The verdict on the file as it is now, if it was checked."""
        return self._verdicts.get(file_state(model, path))

    def check_soon(self, model: str, path) -> None:
        """Check ``path`` as ``model``'s weights in a worker (nothing for an empty field)."""
        path = str(path).strip()
        if not model or not path:
            return
        known = self.known(model, path)
        if known is not None:
            self.checked.emit(known)
            return
        worker = create_worker(check_checkpoint, model, path, self.where,
                               _start_thread=False, _ignore_errors=True)
        self._running.add(worker)
        worker.returned.connect(alive_only(self, self._done))
        worker.finished.connect(lambda: self._running.discard(worker))
        worker.start()

    def announce(self, model: str, path, message: str) -> bool:
        """Show ``message`` (a refusal of ``path`` as ``model``'s weights) unless this file
        was already refused for that model; True when shown."""
        state = file_state(model, path)
        if state in self._announced:
            return False
        self._announced.add(state)
        notify.error(message)
        return True

    def _done(self, verdict: FileVerdict) -> None:
        self._verdicts[file_state(verdict.model, verdict.path)] = verdict
        if verdict.refused:
            self.announce(verdict.model, verdict.path, verdict.problem)
        self.checked.emit(verdict)

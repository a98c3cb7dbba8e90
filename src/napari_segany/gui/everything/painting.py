"""The result layer kept up to date without stalling the viewer.

Selecting a slice's masks with the filters and painting them costs up to a second for a
1024 x 1024 slice with hundreds of masks (and ~50 ms per slice of a stack): it is done in a
worker (:func:`select_and_paint`, also at the end of a run, in the run's worker), with the
feature ranges and the 3D ids of a linked run (:mod:`.selection`).  The main thread only
copies the painted slices into the result layer, one slice per step
(:class:`~..shared.steps.TimedSteps`), and refreshes the layer once.

:class:`ResultPainter` re-selects the stale slices the widget asks for: one worker at a time;
a request made meanwhile waits for it, and what a worker prepared is dropped when the
results or the filters changed since it started (``ResultView.version``).
"""
from __future__ import annotations

from typing import Callable

from napari.qt.threading import create_worker
from qtpy.QtCore import QObject

from ..shared.steps import TimedSteps
from .layers import ensure_result_layer, write_slice
from .selection import SliceInput
from .selection import select_and_paint as select_slice


def select_and_paint(inputs: list[SliceInput], settings, ranges: dict | None = None) -> dict:
    """(In a worker.) Returns slice index -> :class:`~.selection.Selected` (painted) of each
    of ``inputs``, with ``settings`` and the feature ``ranges``."""
    return {inp.index: select_slice(inp, settings, ranges) for inp in inputs}


def copy_steps(layer, prepared: dict):
    """Steps copying painted slices into the result layer (one slice each), then a refresh."""
    for index, selected in prepared.items():
        write_slice(layer, index, selected.labels)
        yield
    layer.refresh()


class ResultPainter(QObject):
    """Re-selects and paints stale slices in a worker; shows them on the result layer in steps.

    ``host``: the widget (``view``, ``viewer``, ``source``, ``filters``); ``on_shown()`` runs
    after each batch of slices is on the layer (the count line follows)."""

    def __init__(self, host, on_shown: Callable[[], None]):
        super().__init__(host)
        self.host, self.on_shown = host, on_shown
        self.worker = None
        self.steps: TimedSteps | None = None
        self.waiting: set = set()  # asked for while a worker runs

    @property
    def busy(self) -> bool:
        return (self.worker is not None or bool(self.waiting)
                or (self.steps is not None and self.steps.running))

    def request(self, indices) -> None:
        """Re-select the stale slices among ``indices`` (now, or after the running worker)."""
        view = self.host.view
        wanted = [i for i in indices if i in view.stale]
        if not wanted:
            return
        if self.worker is not None:
            self.waiting.update(wanted)
            return
        filters, version = self.host.filters, view.version
        self.worker = create_worker(select_and_paint, [view.input(i) for i in wanted],
                                    filters.settings(), filters.ranges(), _start_thread=False,
                                    _ignore_errors=True)
        self.worker.returned.connect(lambda prepared: self._prepared(prepared, version))
        self.worker.errored.connect(self._failed)
        self.worker.finished.connect(self._next)
        self.worker.start()

    def show(self, prepared: dict, current: bool = True) -> None:
        """Accept ``prepared`` (slice index -> painted :class:`~.selection.Selected`) and copy
        it onto the result layer in steps; ``current``: made with the filters of now."""
        host = self.host
        if self.steps is not None:
            self.steps.stop()  # a newer selection: the older copy is not finished, not needed
        layer, emptied = ensure_result_layer(host.viewer, host.source)
        if emptied:  # what it showed is gone: every slice is to be shown again
            host.view.invalidate()
        host.view.accept(prepared, current)  # after the layer: emptying it stales every slice
        self.steps = TimedSteps(copy_steps(layer, prepared), self.on_shown, self._failed, self)

    def stop(self) -> None:
        """The results were dropped: nothing prepared or being copied is shown any more."""
        self.waiting.clear()
        if self.steps is not None:
            self.steps.stop()

    def _prepared(self, prepared: dict, version: int) -> None:
        if getattr(self.host, "closed", False) or self.host.source is None:
            return
        if version == self.host.view.version:  # else other results or filters meanwhile
            self.show(prepared)

    def _failed(self, exc: Exception) -> None:
        from ..shared import notify

        notify.error(f"Could not show the filtered result: {exc}")

    def _next(self) -> None:
        self.worker = None
        waiting, self.waiting = self.waiting, set()
        if waiting and not getattr(self.host, "closed", False) and self.host.source is not None:
            self.request(sorted(waiting))


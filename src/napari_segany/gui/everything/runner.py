"""The runs of the Segment Everything widget: start (or queue), cancel, and their outcome.

:class:`RunController` owns the running job and the model preload of its host widget
(:class:`~.everything_widget.EverythingWidget`), which provides the controls, the image
``source``, the loaded ``model``/``detector`` (kept across runs), the embedding ``cache``,
``view`` (a :class:`~.everything_results.ResultView`), ``notify(level, message)`` and
``closed``.  Worker results reach it through ``alive_only``: they are
dropped once the widget is closed.  It is a child QObject of the widget, so that the worker's
``finished`` no longer reaches it once the widget is deleted (e.g. the viewer closed).
"""
from __future__ import annotations

import itertools

from qtpy.QtCore import QObject

from ...engine.errors import Cancelled, SegAnyError, WeightsNotFoundError
from ...engine.weights import RefusedFile
from .jobs import ModelChoice, Request, gui_wording, start_everything
from .linking import SHOWN
from .model import choice_problem, everything_where
from .params import METHOD_TITLES
from .controls import set_busy
from ..shared.precision_choice import precision_note
from ..shared.stores import layer_store
from ..shared.workers import alive_only, start_model_load


class RunController(QObject):
    """The job (running, stopping, or waited for) and the model load of one widget."""

    def __init__(self, host):
        super().__init__(host)
        self.host = host
        self.job = None
        self.model_worker = None
        self.queued = False  # Run pressed while a cancelled run is stopping: start after it
        self.cancel_reason = ""  # why the running job was cancelled (said when it stops)

    @property
    def busy(self) -> bool:
        return self.job is not None or self.model_worker is not None

    def request(self) -> None:
        """Start a run now, or once the cancelled one has stopped; refuse while busy."""
        if self.job is not None and self.job.cancelled:
            self.queued = True  # starts when the cancelled run has stopped (_finished)
            self.host.status_label.setText("Starting when the cancelled run has stopped…")
            return
        if self.host.busy_running:
            self.host.notify("info", "Everything mode is already running (or a model is "
                             "loading); wait or Cancel.")
            return
        self.start()

    def cancel(self, reason: str = "") -> None:
        self.queued = False
        if self.job is None or self.job.cancelled:
            return
        self.cancel_reason = reason
        self.job.cancel()
        host = self.host
        host.status_label.setText("Cancelling… (the current step finishes first)")
        host.cancel_button.setEnabled(False)
        host.run_button.setEnabled(True)  # a new run waits for this one to stop

    def start(self) -> None:
        host = self.host
        if host.source is None:
            host.notify("error", "No image: open one and pick it in the widget.")
            return
        request = self._request()
        problem = choice_problem(request, host.detector is not None)
        if problem:
            host.status_label.setText("Not started (see the message); nothing was written.")
            host.notify("error", problem)
            return
        set_busy(host, True)
        self.cancel_reason = ""
        host.status_label.setText(f"{METHOD_TITLES[request.method]} on {len(request.indices)} slice(s)…")
        self.job = start_everything(
            request, on_progress=alive_only(host, host.job_progress.show),
            on_done=alive_only(host, self._done), on_error=alive_only(host, self._failed),
            on_aborted=alive_only(host, self._aborted), on_finished=self._finished)

    def _request(self) -> Request:
        host = self.host
        method, choice, source = host.method, host.model_choice_wanted(), host.source
        detector = host.method_controls.detector_choice(choice)
        link_iou = host.link_scope.wanted() if source.n_leading == 1 else None
        scope_all = host.scope_combo.currentIndex() != SHOWN and source.n_leading > 0
        host.cache.backing_store = layer_store(source.layer)  # shared with the other widget
        return Request(
            source, all_indices(source) if scope_all else [host.shown_index()], method,
            host.params.values(method), choice,
            host.model if choice == host.model_choice else None,
            detector, host.detector if detector == host.detector_choice else None, host.cache,
            data=source.layer.data, generation=host.generation, tiling=host.tiling.settings(),
            link_iou=link_iou, filters=host.filters.settings(), ranges=host.filters.ranges())

    def _done(self, outcome) -> None:
        host, request = self.host, self.job.request
        if request.source != host.source or request.generation != host.generation:
            return  # another image was picked, or this one changed, meanwhile
        for table in list(outcome.features.values())[:1]:  # the columns measured
            host.filters.set_columns(table)
        host.view.add(outcome.results, outcome.features, outcome.links)
        filters = host.filters
        current = (request.filters, request.ranges) == (filters.settings(), filters.ranges())
        host.painter.show(outcome.prepared, current)  # else moved during the run
        host.painter.request([host.shown_index()])  # when not current, or stale (3D ids)
        found, kept = host.view.found_and_kept(outcome.results)
        tiled = sorted(set(outcome.tiled.values()))
        if outcome.links:
            tiled.append(f"{max(int(ids.max()) for ids in outcome.links.values())} 3D objects")
        how = f" ({'; '.join(tiled)})" if tiled else ""
        host.status_label.setText(f"Done{how}: {found} masks found, {kept} after the filters. "
                                  "Adjust the filters, then Commit.")
        host.update_count()

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, Cancelled):  # the job stopped itself at a cancel
            self._aborted()
            return
        if isinstance(exc, RefusedFile):  # said once per file, also when it was chosen
            self.host.status_label.setText("Not run: a weights file was refused (see under its "
                                           "field); nothing was written.")
            self.host.file_checks.announce(exc.verdict.model, exc.verdict.path, str(exc))
            return
        self.host.status_label.setText("Everything mode failed; nothing was written.")
        self.host.notify("error", str(exc) if isinstance(exc, (SegAnyError, ValueError)) else
                         f"Everything mode failed: {exc!r}")

    def _aborted(self) -> None:
        why = f" ({self.cancel_reason})" if self.cancel_reason else ""
        self.host.status_label.setText(f"Cancelled{why}; nothing was written.")
        self.host.notify("info", f"Everything mode cancelled{why}; nothing was written.")

    def _finished(self) -> None:
        host, request = self.host, self.job.request  # models loaded by the job stay, even
        self.job = None  # if it failed later
        if host.closed:
            return  # the controls may be gone; nothing is kept for a closed widget
        if request.model is not None:
            host.model, host.model_choice = request.model, request.model_choice
        if request.detector is not None:
            host.detector, host.detector_choice = request.detector, request.detector_choice
        set_busy(host, False)
        if self.queued:
            self.queued = False
            self.start()

    def preload(self, name: str, checkpoint: str = "", device: str = "",
                precision: str = "fp32") -> None:
        """Load a model now (the Load button) in a worker."""
        host = self.host
        if host.busy_running:
            host.notify("info", "Busy: wait for the current job to finish.")
            return
        choice = ModelChoice(name, checkpoint, device, precision)
        host.status_label.setText(f"Loading {name}…")
        host.model_panel.set_busy(True)

        def done(model):
            host.model, host.model_choice = model, choice
            host.status_label.setText(f"{name} loaded{precision_note(model)}.")

        def failed(exc):
            host.status_label.setText("No model loaded.")
            if isinstance(exc, RefusedFile):  # said once per file, also when it was chosen
                host.file_checks.announce(name, checkpoint, str(exc))
                return
            if isinstance(exc, WeightsNotFoundError):
                exc = gui_wording(exc, "Checkpoint")
            host.notify("error", f"Could not load {name}: {exc}")

        def finished(*_):
            self.model_worker = None
            if not host.closed:
                host.model_panel.set_busy(False)

        self.model_worker = start_model_load(name, checkpoint or None, device or None,
                                             where=everything_where, precision=precision,
                                             on_done=alive_only(host, done),
                                             on_error=alive_only(host, failed))
        self.model_worker.finished.connect(finished)


def all_indices(source) -> list[tuple]:
    """Every slice index of an image (one entry per leading spatial axis)."""
    leading = source.spatial_shape[: source.n_leading]
    return [tuple(i) for i in itertools.product(*(range(n) for n in leading))]

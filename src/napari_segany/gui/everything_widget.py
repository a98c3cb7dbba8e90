"""The "Segment Everything" dock widget: every object of a slice (or a stack) into Labels.

Scripting (everything a GUI user does)::

    dock, w = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Everything")
    w.set_image("nuclei")                          # a layer or its name
    w.set_method("object_aware", detector="/path/ObjectAwareModel.pt")
    w.set_model("mobile_sam")                      # or checkpoint=...; loads on the first run
    w.set_params(max_det=200)                      # method parameters (engine names)
    results = w.run(all_slices=False)              # {slice index: EverythingResult}; waits
    w.set_filters(min_area=80, max_contained=0.9)  # live: no recomputation
    n = w.commit()                                 # into "SegAny labels"; one undo step

Threads: loading, encoding and decoding run in a napari worker (progress bar, Cancel);
filters and commits run on the main thread (they only re-select and paint stored masks).

Robustness: a run is cancelled (nothing shown, nothing written) when its image layer is
removed, its data replaced, or the widget closed (also when napari takes it out of its dock);
a Run pressed while a cancelled run is still stopping starts once it has stopped.  Results
that arrive after such a change are dropped.  Bad input is refused with a notification, never
an exception in the event loop.
"""
from __future__ import annotations

import itertools

from pathlib import Path

from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QEvent, QTimer
from qtpy.QtWidgets import QComboBox, QWidget

from ..engine.embedding_cache import EmbeddingCache
from ..engine.errors import Cancelled, ImageError, SegAnyError, WeightsNotFoundError
from ..engine.everything.presets import DETECTOR_NAME
from ..engine.weights import cached_path, weights_present
from ..models.registry import get_spec
from .everything_jobs import ModelChoice, Request, detector_choice, gui_wording, start_everything
from .everything_layers import commit_slices, ensure_result_layer, is_result_layer, show_slice
from .everything_params import METHOD_TITLES
from .everything_ui import build_controls
from .image_slice import ImageSource
from .labels_io import LABELS_NAME, PREVIEW_NAME, LabelsWriter, ensure_labels
from .workers import alive_only, process_events_until, start_model_load

FILTER_DEBOUNCE_MS = 60
NEW_LABELS = "<new Labels layer>"


class EverythingWidget(QWidget):
    """Everything mode (SAM grid, object-aware prompts, FastSAM) with live filters and commit."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.source: ImageSource | None = None
        self.results: dict = {}  # slice index -> EverythingResult of the last run (unfiltered)
        self.shown: dict = {}  # slice index -> filtered EverythingResult on the result layer
        self._stale: set = set()  # slices whose result layer predates the filters
        self.model, self.model_choice = None, None
        self.detector, self.detector_choice = None, None
        self.cache = EmbeddingCache(budget_bytes=256 << 20)
        self.writer = LabelsWriter()
        self._job = None
        self._model_worker = None
        self._queued = False  # Run pressed while a cancelled run is stopping: start after it
        self._cancel_reason = ""  # why the running job was cancelled (said when it stops)
        self._generation = 0  # image changes seen: results of an older image are dropped
        self.closed = False  # closed or taken out of its dock: worker results are dropped
        self._filter_timer = QTimer(self)
        self._filter_timer.setSingleShot(True)
        self._filter_timer.setInterval(FILTER_DEBOUNCE_MS)
        self._filter_timer.timeout.connect(self._apply_filters)
        self._build_ui()
        self.viewer.layers.events.inserted.connect(self._refresh_layer_choices)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self.viewer.dims.events.current_step.connect(self._on_step)
        self._refresh_layer_choices()

    # ============================ public API (documented in docs/everything.md) ============
    def set_image(self, layer, channel_first: bool = False, channels=(0, 1, 2)) -> None:
        """Segment ``layer`` (an Image layer or its name)."""
        layer = self.viewer.layers[layer] if isinstance(layer, str) else layer
        self.channel_check.setChecked(channel_first)
        self.channels_edit.setText(",".join(str(c) for c in channels))
        self.image_combo.setCurrentText(layer.name)
        self._attach_image(layer)

    def set_method(self, method: str, detector=None) -> None:
        """"grid", "object_aware" (``detector``: ObjectAwareModel.pt, else the cache) or "fastsam"."""
        if method not in METHOD_TITLES:
            raise ValueError(f"Unknown method {method!r}: choose one of {', '.join(METHOD_TITLES)}.")
        self.method_combo.setCurrentIndex(list(METHOD_TITLES).index(method))
        if detector is not None:
            self.detector_row.edit.setText(str(detector))

    def set_model(self, name: str, checkpoint=None, device=None, wait: bool = False) -> None:
        """Choose the model (it loads at the next run, or now with ``wait``)."""
        self.model_panel.select(name, checkpoint, device)
        if wait:
            choice = self._model_choice()
            self._preload(choice.name, choice.checkpoint, choice.device)
            self.wait()

    def set_params(self, **params) -> None:
        """Method parameters by engine name (e.g. points_per_side, conf, max_det)."""
        self.params.set_values(**params)

    def set_filters(self, **filters) -> None:
        """Post-filters (FilterSettings names: min_area, max_area_fraction, min_score,
        min_stability, max_contained; None = off); applied at once."""
        self.filters.set_settings(**filters)
        self._apply_filters()

    def run(self, all_slices: bool | None = None, wait: bool = True) -> dict:
        """Segment the shown slice (or all slices) in a worker; returns the unfiltered results
        by slice index once done when ``wait``.  Raises ImageError without an image; while a
        cancelled run is stopping, the new one starts after it."""
        if all_slices is not None:
            self.scope_combo.setCurrentIndex(int(all_slices))
        if self.source is None:
            raise ImageError("No image: open one and pick it in the widget, or call set_image(layer).")
        self._request_run()
        if wait:
            self.wait()
        return self.results

    def cancel(self, reason: str = "") -> None:
        """Stop the running job (and a run waiting for it); nothing of it is shown or written."""
        self._queued = False
        if self._job is None or self._job.cancelled:
            return
        self._cancel_reason = reason
        self._job.cancel()
        self.status_label.setText("Cancelling… (the current step finishes first)")
        self.cancel_button.setEnabled(False)
        self.run_button.setEnabled(True)  # a new run waits for this one to stop

    def commit(self, all_slices: bool | None = None, preserve: bool | None = None) -> int:
        """Copy the shown result (of the shown slice, or of every segmented slice) into the
        target Labels with new ids, as one undo step. Returns the number of objects written."""
        if self.source is None or not self.shown:
            show_info("Nothing to commit: run everything mode first.")
            return 0
        scope_all = self.scope_combo.currentIndex() == 1 if all_slices is None else all_slices
        indices = sorted(self.shown) if scope_all else [self._shown_index()]
        indices = [i for i in indices if i in self.shown]
        if not indices:
            show_info("This slice has no result yet: run it first, or commit all slices.")
            return 0
        self._refresh_stale(indices)
        target = self._target_layer()
        if target is None:
            return 0
        self.writer.attach(target)
        keep = self.preserve_check.isChecked() if preserve is None else preserve
        try:
            n = commit_slices(self.writer, [(i, self.shown[i].labels) for i in indices], keep)
        except ValueError as exc:
            show_error(str(exc))
            return 0
        self.status_label.setText(f"Committed {n} objects into {target.name!r} "
                                  "(Ctrl+Z on that layer undoes the whole commit).")
        show_info(f"Committed {n} objects into {target.name!r}.")
        return n

    @property
    def busy(self) -> bool:
        """A run (running, stopping or waiting to start) or a model load is under way."""
        return self._job is not None or self._model_worker is not None

    def wait(self, timeout: float = 1800.0) -> None:
        """Process Qt events until no job or model load runs."""
        process_events_until(lambda: not (self.busy or self._filter_timer.isActive()),
                             timeout, "The Segment Everything widget", poll=0.005)

    # ============================ UI =======================================================
    def _build_ui(self) -> None:
        build_controls(self)
        self.image_combo.activated.connect(lambda _: self._attach_selected_image())
        self.channel_check.toggled.connect(lambda _: self._attach_selected_image())
        self.channels_edit.editingFinished.connect(self._attach_selected_image)
        self.method_combo.currentIndexChanged.connect(self._on_method)
        self.model_panel.load_requested.connect(self._preload)
        self.run_button.clicked.connect(self._run_clicked)
        self.cancel_button.clicked.connect(lambda: self.cancel())
        self.filters.changed.connect(lambda: self._filter_timer.start())
        self.commit_button.clicked.connect(lambda: self.commit())
        self._on_method()
        self._set_busy(False)

    def _on_method(self, *_) -> None:
        method = self.method
        self.params.show_method(method)
        self.model_panel.set_method(method)
        for w in (self.detector_row, self.detector_label):
            w.setVisible(method == "object_aware")

    @property
    def method(self) -> str:
        return list(METHOD_TITLES)[self.method_combo.currentIndex()]

    def _set_busy(self, busy: bool) -> None:
        self.run_button.setEnabled(not busy)
        self.cancel_button.setVisible(busy)
        self.cancel_button.setEnabled(busy)
        self.progress.setVisible(busy)
        self.progress.setValue(0)
        self.commit_button.setEnabled(not busy)

    def _progress(self, report) -> None:
        self.progress.setValue(int(round(1000 * report.fraction)))
        self.progress.setFormat(f"{report.message} %p%" if report.message else "%p%")

    # ============================ layers ===================================================
    def _refresh_layer_choices(self, event=None) -> None:
        images = [l.name for l in self.viewer.layers if isinstance(l, Image)]
        targets = [l.name for l in self.viewer.layers if isinstance(l, Labels)
                   and not is_result_layer(l) and l.name != PREVIEW_NAME]
        _set_items(self.image_combo, images)
        _set_items(self.target_combo, [NEW_LABELS] + targets)
        if self.target_combo.currentText() == NEW_LABELS and LABELS_NAME in targets:
            self.target_combo.setCurrentText(LABELS_NAME)  # the interactive widget's target
        if self.source is None and images:
            self._attach_selected_image()

    def _on_layer_removed(self, event) -> None:
        if self.source is not None and event.value == self.source.layer:  # == : proxies
            self.cancel("the image layer was removed")
            self._detach_image()
        elif is_result_layer(event.value):
            self._stale = set(self.results)  # re-shown in a new result layer when needed
        self._refresh_layer_choices()

    def _attach_selected_image(self) -> None:
        name = self.image_combo.currentText()
        if name and name in self.viewer.layers:
            self._attach_image(self.viewer.layers[name])

    def _attach_image(self, layer) -> None:
        try:
            if not isinstance(layer, Image):
                raise ImageError(f"{layer.name!r} is a {type(layer).__name__} layer: pick an Image layer.")
            channels = tuple(int(c) for c in self.channels_edit.text().replace(" ", "").split(",") if c)
            source = ImageSource(layer, self.channel_check.isChecked(), channels)
            source.check()
        except (ImageError, ValueError) as exc:
            show_error(f"Cannot segment this image: {exc}")
            return
        if source != self.source:
            self.cancel("another image was picked")
            self._detach_image()
            self.source = source
            layer.events.data.connect(self._on_image_data)
        self.scope_combo.setEnabled(source.n_leading > 0)

    def _detach_image(self) -> None:
        if self.source is not None:
            self.source.layer.events.data.disconnect(self._on_image_data)
        self.source = None
        self._forget_results()

    def _on_image_data(self, event=None) -> None:
        self._generation += 1  # a result of the old data may still be on its way: dropped
        if self._job is not None and not self._job.cancelled:
            self.cancel("the image changed")
        elif self.results:
            show_info("The image changed: run everything mode again (its results were dropped).")
        self._forget_results()

    def _forget_results(self) -> None:
        self.results, self.shown, self._stale = {}, {}, set()
        self.count_label.setText("No result yet.")

    def _target_layer(self) -> Labels | None:
        name = self.target_combo.currentText()
        chosen = self.viewer.layers[name] if name in self.viewer.layers else None
        try:
            layer = ensure_labels(self.viewer, self.source, chosen)
        except ValueError as exc:
            show_error(str(exc))
            return None
        self.target_combo.setCurrentText(layer.name)
        return layer

    def _shown_index(self) -> tuple:
        return self.source.index_from_world(self.viewer.dims.point) if self.source else ()

    def _all_indices(self) -> list[tuple]:
        leading = self.source.spatial_shape[: self.source.n_leading]
        return [tuple(i) for i in itertools.product(*(range(n) for n in leading))]

    # ============================ running ==================================================
    def _model_choice(self) -> ModelChoice:
        p = self.model_panel
        return ModelChoice(p.model_combo.currentText(), p.checkpoint, p.device_combo.currentText())

    def _run_clicked(self) -> None:
        """The Run button: like run(wait=False), with a notification instead of an exception."""
        try:
            self.run(wait=False)
        except SegAnyError as exc:
            show_error(str(exc))

    def _request_run(self) -> None:
        if self._job is not None and self._job.cancelled:
            self._queued = True  # starts when the cancelled run has stopped (_run_finished)
            self.status_label.setText("Starting when the cancelled run has stopped…")
            return
        if self.busy:
            show_info("Everything mode is already running (or a model is loading); wait or Cancel.")
            return
        self._start_run()

    def _start_run(self) -> None:
        if self.source is None:
            show_error("No image: open one and pick it in the widget.")
            return
        method, choice = self.method, self._model_choice()
        problem = self._choice_problem(method, choice)
        if problem:
            self.status_label.setText("Not started (see the message); nothing was written.")
            show_error(problem)
            return
        detector = detector_choice(self.detector_row.path, choice.device)
        scope_all = self.scope_combo.currentIndex() == 1 and self.source.n_leading > 0
        request = Request(
            self.source, self._all_indices() if scope_all else [self._shown_index()], method,
            self.params.values(method), choice,
            self.model if choice == self.model_choice else None,
            detector, self.detector if detector == self.detector_choice else None, self.cache,
            data=self.source.layer.data, generation=self._generation)
        self._set_busy(True)
        self._cancel_reason = ""
        self.status_label.setText(f"{METHOD_TITLES[method]} on {len(request.indices)} slice(s)…")
        self._job = start_everything(
            request, on_progress=alive_only(self, self._progress),
            on_done=alive_only(self, self._run_done), on_error=alive_only(self, self._run_failed),
            on_aborted=alive_only(self, self._run_aborted), on_finished=self._run_finished)

    def _choice_problem(self, method: str, choice: ModelChoice) -> str:
        """What makes a run impossible before any work (no thread is started for it)."""
        if not choice.name:
            return f"No model can run {METHOD_TITLES[method]}: none is registered."
        if choice.checkpoint and not Path(choice.checkpoint).expanduser().is_file():
            return f"Checkpoint file not found: {choice.checkpoint}. Choose the file again (Browse…)."
        if method != "object_aware":
            return ""
        path = self.detector_row.path
        if path and not Path(path).expanduser().is_file():
            return f"Detector file not found: {path}. Choose ObjectAwareModel.pt again (Browse…)."
        if not path and self.detector is None and not weights_present(DETECTOR_NAME):
            return (f"{METHOD_TITLES[method]} needs MobileSAMv2's detector ObjectAwareModel.pt, "
                    f"which is not in the cache ({cached_path(DETECTOR_NAME).parent}). "
                    f"{get_spec(DETECTOR_NAME).download_hint}, then choose it in the Detector "
                    "field (Browse…).")
        return ""

    def _run_done(self, outcome) -> None:
        request = self._job.request
        if request.source != self.source or request.generation != self._generation:
            return  # another image was picked, or this one changed, meanwhile
        self.results.update(outcome.results)
        layer = ensure_result_layer(self.viewer, self.source)
        settings = self.filters.settings()
        for index, result in outcome.results.items():
            self.shown[index] = settings.apply(result)
            show_slice(layer, index, self.shown[index].labels)
            self._stale.discard(index)
        found = sum(len(r) for r in outcome.results.values())
        kept = sum(len(self.shown[i]) for i in outcome.results)
        self.status_label.setText(f"Done: {found} masks found, {kept} after the filters. "
                                  "Adjust the filters, then Commit.")
        self._update_count()

    def _run_failed(self, exc: Exception) -> None:
        if isinstance(exc, Cancelled):  # the job stopped itself at a cancel
            self._run_aborted()
            return
        self.status_label.setText("Everything mode failed; nothing was written.")
        show_error(str(exc) if isinstance(exc, (SegAnyError, ValueError)) else
                   f"Everything mode failed: {exc!r}")

    def _run_aborted(self) -> None:
        why = f" ({self._cancel_reason})" if self._cancel_reason else ""
        self.status_label.setText(f"Cancelled{why}; nothing was written.")
        show_info(f"Everything mode cancelled{why}; nothing was written.")

    def _run_finished(self) -> None:
        request = self._job.request  # models loaded by the job stay, even if it failed later
        self._job = None
        if self.closed:
            return  # the controls may be gone; nothing is kept for a closed widget
        if request.model is not None:
            self.model, self.model_choice = request.model, request.model_choice
        if request.detector is not None:
            self.detector, self.detector_choice = request.detector, request.detector_choice
        self._set_busy(False)
        if self._queued:
            self._queued = False
            self._start_run()

    def _preload(self, name: str, checkpoint: str = "", device: str = "") -> None:
        if self.busy:
            show_info("Busy: wait for the current job to finish.")
            return
        choice = ModelChoice(name, checkpoint, device)
        self.status_label.setText(f"Loading {name}…")
        self.model_panel.set_busy(True)

        def done(model):
            self.model, self.model_choice = model, choice
            self.status_label.setText(f"{name} loaded.")

        def failed(exc):
            self.status_label.setText("No model loaded.")
            if isinstance(exc, WeightsNotFoundError):
                exc = gui_wording(exc, "Checkpoint")
            show_error(f"Could not load {name}: {exc}")

        def finished(*_):
            self._model_worker = None
            if not self.closed:
                self.model_panel.set_busy(False)

        self._model_worker = start_model_load(name, checkpoint or None, device or None,
                                              on_done=alive_only(self, done),
                                              on_error=alive_only(self, failed))
        self._model_worker.finished.connect(finished)

    # ============================ filters ==================================================
    def _apply_filters(self) -> None:
        """Re-select the masks of every slice (lazily: the shown one now, others when shown)."""
        self._filter_timer.stop()
        self._stale = set(self.results)
        index = self._shown_index()
        if index in self._stale:
            self._refresh_stale([index])
        self._update_count()

    def _refresh_stale(self, indices) -> None:
        stale = [i for i in indices if i in self._stale]
        if not stale:
            return
        layer = ensure_result_layer(self.viewer, self.source)
        settings = self.filters.settings()
        for index in stale:
            self.shown[index] = settings.apply(self.results[index])
            show_slice(layer, index, self.shown[index].labels)
            self._stale.discard(index)

    def _on_step(self, event=None) -> None:
        if self.source is not None and self._stale:
            self._refresh_stale([self._shown_index()])
            self._update_count()

    def _update_count(self) -> None:
        index = self._shown_index()
        if index not in self.results:
            done = len(self.results)
            self.count_label.setText(f"No result on this slice ({done} slice(s) segmented).")
            return
        kept, found = len(self.shown[index]), len(self.results[index])
        text = f"{kept} objects shown (of {found} found)"
        if len(self.results) > 1:
            text += f" on this slice; {len(self.results)} slices segmented"
        self.count_label.setText(text + ".")

    # ============================ closing ==================================================
    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self._shut_down()
        super().closeEvent(event)

    def event(self, event) -> bool:
        # napari's remove_dock_widget (the dock's close button) takes the widget out of its
        # dock without closing it: that is the end of this widget (a re-opened one is new).
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
            elif getattr(self, "_docked", False):
                self._shut_down()
        return super().event(event)

    def _shut_down(self) -> None:
        """Stop the run (its worker then ends, with its threads) and let go of the viewer, so
        that nothing reacts to this widget any more.  Layers and committed labels stay."""
        if self.closed:
            return
        self.cancel("the widget was closed")
        self.closed = True  # from now on worker results are dropped (alive_only)
        self._filter_timer.stop()
        self.viewer.layers.events.inserted.disconnect(self._refresh_layer_choices)
        self.viewer.layers.events.removed.disconnect(self._on_layer_removed)
        self.viewer.dims.events.current_step.disconnect(self._on_step)
        if self.source is not None:
            self.source.layer.events.data.disconnect(self._on_image_data)
        self.writer.attach(None)


def _set_items(combo: QComboBox, items: list[str]) -> None:
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(items)
    if current in items:
        combo.setCurrentText(current)
    combo.blockSignals(False)

"""The "Segment Everything" dock widget: every object of a slice (or a stack) into Labels.

Scripting (everything a GUI user does)::

    dock, w = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Everything")
    w.set_image("nuclei")                          # a layer or its name
    w.set_method("object_aware", detector="/path/ObjectAwareModel.pt")
    w.set_model("mobile_sam")                      # or checkpoint=...; loads on the first run
    w.set_params(max_det=200)                      # method parameters (engine names)
    w.set_tiling(tile=1024, halo=128)              # large slices: tile size and halo (px)
    results = w.run(all_slices=False)              # {slice index: EverythingResult}; waits
    w.set_filters(min_area=80, max_contained=0.9)  # live: no recomputation
    w.filter_features(circularity=(0.8, None))     # live, on the measured features
    n = w.commit()                                 # into "SegAny labels"; one undo step

A (Z, Y, X) stack: ``w.set_linking(True, min_iou=0.5)`` then ``w.run()`` segments every
slice and links the masks into 3D objects (one id per object on the result layer and in a
commit).  Every mask is measured in the worker: the result layer's ``features`` list the
shown slice's kept masks with area, perimeter, solidity, circularity, eccentricity, mean /
max intensity, score and stability (``w.features``: all masks); a commit adds the rows of
what it writes to the target's ``features``.

Threads: loading, encoding, decoding, measuring and linking run in a napari worker (progress
bar, Cancel); re-selecting with the filters and painting run in workers too (:mod:`.painting`),
and a commit is prepared in a worker and written in short steps (:mod:`.commit`): the viewer
never waits long for the widget.  Large slices run tile by tile.

Parts: :mod:`.controls`, :class:`.runner.RunController` (runs, model loads),
:class:`.results.ResultView` (results, their filtered selection), :mod:`.painting`,
:mod:`.commit`.

Robustness: a run is cancelled (nothing shown, nothing written) when its image layer is
removed, its data replaced, or the widget closed (also when napari takes it out of its dock);
a Run pressed while a cancelled run is still stopping starts once it has stopped.  Results
that arrive after such a change are dropped.  Bad input is refused with a notification, never
an exception in the event loop.
"""
from __future__ import annotations

from napari.layers import Image, Labels
from qtpy.QtWidgets import QWidget

from ...engine.embeddings import EmbeddingCache
from ...engine.errors import ImageError, SegAnyError
from ..shared import notify
from ..shared.image_controls import channels_of
from ..shared.image_slice import ImageSource
from ..shared.labels_io import (
    LABELS_NAME, NEW_LABELS, LabelsWriter, ensure_labels, is_scratch_layer,
)
from ..shared.qt_helpers import (
    ShutsDownWhenClosed, select_quietly, set_items, signals_blocked, single_shot_timer,
)
from ..shared.warm_up import import_in_background
from ..shared.workers import process_events_until
from .controls import build_controls, set_busy
from .jobs import ModelChoice
from .commit import CommitRun, request_commit
from .layers import is_result_layer
from .object_options import ObjectOptions
from .painting import ResultPainter
from .results import ResultView
from .runner import RunController

FILTER_DEBOUNCE_MS = 60


class EverythingWidget(ObjectOptions, ShutsDownWhenClosed, QWidget):
    """Everything mode (SAM grid, object-aware prompts, FastSAM) with live filters and commit."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        import_in_background()  # napari's first result layer would import them
        self.viewer = napari_viewer
        self.source: ImageSource | None = None
        self.view = ResultView()
        self.model, self.model_choice = None, None
        self.detector, self.detector_choice = None, None
        self.cache = EmbeddingCache(budget_bytes=256 << 20)  # slices and tiles
        self.writer = LabelsWriter()
        self.runner = RunController(self)
        self.painter = ResultPainter(self, on_shown=self.update_count)
        self.committing: CommitRun | None = None
        self.generation = 0  # image changes seen: results of an older image are dropped
        self.closed = False  # closed or taken out of its dock: worker results are dropped
        self._filter_timer = single_shot_timer(self, FILTER_DEBOUNCE_MS, self._apply_filters)
        self._build_ui()
        self.viewer.layers.events.inserted.connect(self._refresh_layer_choices)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self.viewer.layers.events.connect(self._on_layer_event)
        self.viewer.dims.events.current_step.connect(self._on_step)
        self._refresh_layer_choices()

    # ============================ public API (documented in docs/everything.md) ============
    def set_image(self, layer, channel_first: bool = False, channels=(0, 1, 2)) -> None:
        """Segment ``layer`` (an Image layer or its name)."""
        layer = self.viewer.layers[layer] if isinstance(layer, str) else layer
        with signals_blocked(self.channel_check):  # no attach of the old image with these
            self.channel_check.setChecked(channel_first)
        self.channels_edit.setText(",".join(str(c) for c in channels))
        select_quietly(self.image_combo, layer.name)
        self._attach_image(layer)

    def set_method(self, method: str, detector=None) -> None:
        """"grid", "object_aware" (``detector``: ObjectAwareModel.pt, else the cache) or "fastsam"."""
        self.method_controls.set_method(method, detector)

    def set_model(self, name: str, checkpoint=None, device=None, wait: bool = False,
                  precision: str | None = None) -> None:
        """Choose the model (it loads at the next run, or now with ``wait``); ``precision``:
        "auto", "fp32" or "bf16" (None: the panel's choice)."""
        self.model_panel.select(name, checkpoint, device, precision)
        if wait:
            choice = self.model_choice_wanted()
            self.runner.preload(choice.name, choice.checkpoint, choice.device, choice.precision)
            self.wait()

    def set_params(self, **params) -> None:
        """Method parameters by engine name (e.g. points_per_side, conf, max_det)."""
        self.params.set_values(**params)

    def set_filters(self, **filters) -> None:
        """Post-filters (FilterSettings names: min_area, max_area_fraction, min_score,
        min_stability, max_contained; None = off); applied at once."""
        self.filters.set_settings(**filters)
        self._apply_filters()
        self.wait()

    def set_tiling(self, tile=None, halo=None, threshold=None, enabled: bool = True) -> None:
        """Slices longer than ``threshold`` px (None: 2 x model input, >= 2048) run in tiles of
        ``tile`` px (None: model input) with ``halo`` (None: tile / 8); False: never tiled."""
        self.tiling.set_settings(tile, halo, threshold, enabled)

    def run(self, all_slices: bool | None = None, wait: bool = True) -> dict:
        """Segment the shown slice (or all slices) in a worker; returns the unfiltered results
        by slice index once done when ``wait``.  Raises ImageError without an image; while a
        cancelled run is stopping, the new one starts after it."""
        if all_slices is not None and not (all_slices and self.link_scope.wanted()):
            self.scope_combo.setCurrentIndex(int(all_slices))  # (a linked run is on all)
        if self.source is None:
            raise ImageError("No image: open one and pick it in the widget, or call set_image(layer).")
        self.runner.request()
        if wait:
            self.wait()
        return self.results

    def cancel(self, reason: str = "") -> None:
        """Stop the running job (and a run waiting for it) or commit; nothing of it is shown
        or written."""
        self.runner.cancel(reason)
        if self.committing is not None:
            self.committing.cancel()

    def commit(self, all_slices: bool | None = None, preserve: bool | None = None,
               wait: bool = True) -> int:
        """Copy the shown result (of the shown slice, or of every segmented slice) into the
        target Labels with new ids, as one undo step (prepared in a worker, written in short
        steps). Returns the number of objects written once done when ``wait`` (else 0)."""
        written = []
        self.committing = request_commit(self, all_slices, preserve, written)
        if wait and self.committing is not None:
            self.wait()
        return written[0] if written else 0

    @property
    def results(self) -> dict:
        """Slice index -> EverythingResult of the last run (unfiltered)."""
        return self.view.results

    @property
    def shown(self) -> dict:
        """Slice index -> the filtered EverythingResult shown on the result layer."""
        return self.view.shown

    @property
    def busy(self) -> bool:
        """A run (running, stopping or waiting to start), a model load, a commit or a
        re-selection of the result is under way."""
        return self.busy_running or self.painter.busy

    @property
    def busy_running(self) -> bool:
        """A run, a model load or a commit (what excludes another one) is under way."""
        return self.runner.busy or self.committing is not None

    @property
    def _job(self):
        return self.runner.job

    def wait(self, timeout: float = 1800.0) -> None:
        """Process Qt events until no job or model load runs."""
        process_events_until(lambda: not (self.busy or self._filter_timer.isActive()),
                             timeout, "The Segment Everything widget", poll=0.005)

    # ============================ for the run controller ===================================
    @property
    def method(self) -> str:
        return self.method_controls.method

    def model_choice_wanted(self) -> ModelChoice:
        return self.method_controls.model_choice()

    @property
    def file_checks(self):
        """The verdicts on the weights files chosen in this dock (each refusal said once)."""
        return self.model_panel.file_checks

    def notify(self, level: str, message: str) -> None:
        """One notification ("info" or "error"), for the run controller."""
        notify.by_level(level, message)

    def shown_index(self) -> tuple:
        return self.source.index_from_world(self.viewer.dims.point) if self.source else ()

    def update_count(self) -> None:
        self.count_label.setText(self.view.count_text(self.shown_index()))
        self._show_features()

    # ============================ UI =======================================================
    def _build_ui(self) -> None:
        build_controls(self)
        self.image_combo.activated.connect(lambda _: self._attach_selected_image())
        self.channel_check.toggled.connect(lambda _: self._attach_selected_image())
        self.channels_edit.editingFinished.connect(self._attach_selected_image)
        self.model_panel.load_requested.connect(self.runner.preload)
        self.run_button.clicked.connect(self._run_clicked)
        self.cancel_button.clicked.connect(lambda: self.cancel())
        self.filters.changed.connect(lambda: self._filter_timer.start())
        self.commit_button.clicked.connect(lambda: self.commit(wait=False))
        set_busy(self, False)

    def _run_clicked(self) -> None:
        """The Run button: like run(wait=False), with a notification instead of an exception."""
        try:
            self.run(wait=False)
        except SegAnyError as exc:
            notify.error(str(exc))

    # ============================ layers ===================================================
    def _refresh_layer_choices(self, event=None) -> None:
        images = [l.name for l in self.viewer.layers if isinstance(l, Image)]
        targets = [l.name for l in self.viewer.layers if isinstance(l, Labels)
                   and not is_result_layer(l) and not is_scratch_layer(l)]
        set_items(self.image_combo, images)
        set_items(self.target_combo, [NEW_LABELS] + targets)
        if self.target_combo.currentText() == NEW_LABELS and LABELS_NAME in targets:
            self.target_combo.setCurrentText(LABELS_NAME)  # the interactive widget's target
        inserted = getattr(event, "value", None) if getattr(event, "type", "") == "inserted" else None
        self._pick_first_image(inserted if isinstance(inserted, Image) else None)
        self._show_choice()

    def _on_layer_event(self, event) -> None:
        if event.type == "name":  # a rename: the Data box names what is in use
            self._refresh_layer_choices()

    def _on_layer_removed(self, event) -> None:
        if self.source is not None and event.value == self.source.layer:  # == : proxies
            self.cancel("the image layer was removed")
            self._detach_image()
        elif is_result_layer(event.value):
            self.view.invalidate()  # re-shown in a new result layer when needed
        self._refresh_layer_choices()

    def _pick_first_image(self, preferred=None) -> None:
        """Without an image, take one by itself: ``preferred`` (a new layer), else the first
        image that can be segmented; if none can, say why for the first (once)."""
        if self.source is not None:
            return
        candidates = [preferred] if preferred is not None else [
            l for l in self.viewer.layers if isinstance(l, Image)]
        for layer in candidates:
            try:
                self._source_for(layer)
            except (ImageError, ValueError):
                continue
            return self._attach_image(layer)
        if candidates:
            self._attach_image(candidates[0])  # the notification says why not

    def _attach_selected_image(self) -> None:
        name = self.image_combo.currentText()
        if name and name in self.viewer.layers:
            self._attach_image(self.viewer.layers[name])

    def _source_for(self, layer) -> ImageSource:
        if not isinstance(layer, Image):
            raise ImageError(f"{layer.name!r} is a {type(layer).__name__} layer: pick an "
                             "Image layer.")
        source = ImageSource(layer, self.channel_check.isChecked(),
                             channels_of(self.channels_edit.text()))
        source.check()
        return source

    def _attach_image(self, layer) -> None:
        try:
            source = self._source_for(layer)
        except (ImageError, ValueError) as exc:
            notify.error(f"Cannot segment this image: {exc}")
            self._show_choice()  # the Data box keeps naming the image that will be used
            return
        if source != self.source:
            self.cancel("another image was picked")
            self._detach_image()
            self.source = source
            layer.events.data.connect(self._on_image_data)
        self.scope_combo.setEnabled(source.n_leading > 0)
        self.link_scope.offer(source.n_leading == 1)
        self._show_choice()

    def _show_choice(self) -> None:
        """The Data box names the image (and channels) a run will use; empty when none."""
        if self.source is None:
            self.image_combo.setCurrentIndex(-1)
            return
        select_quietly(self.image_combo, self.source.layer.name)
        with signals_blocked(self.channel_check):
            self.channel_check.setChecked(self.source.channel_first)
        self.channels_edit.setText(",".join(str(c) for c in self.source.channels))

    def _detach_image(self) -> None:
        if self.source is not None:
            self.source.layer.events.data.disconnect(self._on_image_data)
        self.source = None
        self._forget_results()

    def _on_image_data(self, event=None) -> None:
        self.generation += 1  # a result of the old data may still be on its way: dropped
        if self._job is not None and not self._job.cancelled:
            self.cancel("the image changed")
        elif self.results:
            notify.info("The image changed: run everything mode again (its results were dropped).")
        self._forget_results()

    def _forget_results(self) -> None:
        self.view.forget()
        self.painter.stop()
        self.count_label.setText("No result yet.")

    def _target_layer(self) -> Labels | None:
        name = self.target_combo.currentText()
        chosen = self.viewer.layers[name] if name in self.viewer.layers else None
        try:
            layer = ensure_labels(self.viewer, self.source, chosen)
        except ValueError as exc:
            notify.error(str(exc))
            return None
        self.target_combo.setCurrentText(layer.name)
        return layer

    # ============================ filters ==================================================
    def _apply_filters(self) -> None:
        """Re-select the masks of every slice (lazily: the shown one now, others when shown),
        in a worker (see .painting)."""
        self._filter_timer.stop()
        self.view.invalidate()
        if self.source is not None:
            self.painter.request([self.shown_index()])

    def _on_step(self, event=None) -> None:
        if self.source is not None and self.view.results:
            self.update_count()  # and the shown slice's features
            self.painter.request([self.shown_index()])

    # ============================ closing ==================================================
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
        self.viewer.layers.events.disconnect(self._on_layer_event)
        self.viewer.dims.events.current_step.disconnect(self._on_step)
        if self.source is not None:
            self.source.layer.events.data.disconnect(self._on_image_data)
        self.writer.attach(None)

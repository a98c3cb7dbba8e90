"""The "Segment Anything" dock widget: click on an object, see its mask, press C, next object.

Scripting (a notebook user can do everything a GUI user does)::

    dock, w = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Anything")
    w.set_image("cell (2D)")                       # a layer or its name
    w.set_model("mobile_sam")                      # or checkpoint="/path/mobile_sam.pt"; waits
    masks = w.segment(points=[[120, 80]])          # (row, col) on the shown slice; waits
    w.next_candidate()                             # another of the 3 candidates
    ids = w.commit()                               # new label ids, undo with labels.undo()
    w.propagate(wait=True)                         # that object through z / t (Shift+S)

Threads: the model loads and the embedding is computed in napari workers (progress bar,
Cancel); the decoder runs in a worker too, latest prompts first (see ``decoding.py``).
"""
from __future__ import annotations


from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent, QTimer
from qtpy.QtWidgets import QComboBox, QGroupBox, QVBoxLayout, QWidget

from ..engine.embedding_cache import EmbeddingCache
from ..engine.errors import ImageError, PromptError, SegAnyError
from ..engine.interactive import InteractiveSession, ObjectMask, group_prompts
from ..engine.fastsam_interactive import FastSAMPredictor, FastSAMSession
from ..engine.predictor import Predictor
from ..models.registry import INSTANCE
from ..engine.prompts import box_to_rectangle, fit_prompts
from .embeddings import EmbeddingManager
from .image_slice import ImageSource
from .keybindings import bind_shortcuts, unbind_shortcuts
from .labels_io import PREVIEW_NAME, LabelsWriter, PreviewLayer, ensure_labels, own_labels
from .decoding import DecodeQueue
from .prompt_layers import BOXES_NAME, POINTS_NAME, PromptLayers
from .propagation_panel import PropagationPanel
from .segany_ui import build_controls
from .store_panel import StorePanel
from .workers import alive_only, process_events_until, start_model_load

DECODE_DEBOUNCE_MS = 15  # coalesces the bursts of events of one edit (add + select + ...)
CONTRAST_DEBOUNCE_MS = 400  # a contrast slider drag re-embeds once, when it stops
NEW_LABELS = "<new Labels layer>"
OWN_LAYERS = (POINTS_NAME, BOXES_NAME, PREVIEW_NAME)


class SegAnyWidget(QWidget):
    """Interactive segmentation of the shown slice with points and boxes into Labels."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.cache = EmbeddingCache()
        self.predictor: Predictor | None = None
        self.session: InteractiveSession | None = None
        self.source: ImageSource | None = None
        self.index: tuple | None = None  # the slice the session and preview belong to
        self._model_worker = None
        self._embedded_key = None  # the embedding the predictor holds
        self._warned_no_model = False
        self._shape = None  # the image's spatial shape when it was attached
        self._left_out = (0, 0, 0)  # prompts of the shown slice ignored (and said so)
        self.closed = False  # closed or taken out of its dock: worker results are dropped
        # Worker results arrive through the event loop, possibly after the widget closed.
        self.decoder = DecodeQueue(on_result=alive_only(self, self._show_masks),
                                   on_error=alive_only(self, self._decode_failed))
        self.prompts = PromptLayers(napari_viewer, self._schedule_decode)
        self.preview = PreviewLayer(napari_viewer)
        self.writer = LabelsWriter()
        self.embeddings = EmbeddingManager(
            self.cache, on_ready=alive_only(self, lambda job: self._schedule_decode()),
            on_progress=alive_only(self, self._progress),
            on_busy=alive_only(self, self._set_embedding_busy),
            on_error=alive_only(self, self._embedding_failed),
            on_cancelled=alive_only(self, lambda: show_info("Embedding cancelled.")))
        self._build_ui()
        self._decode_timer = _single_shot(self, DECODE_DEBOUNCE_MS, self._decode_now)
        self._contrast_timer = _single_shot(self, CONTRAST_DEBOUNCE_MS, self._contrast_settled)
        # After a removal, not during it: napari's layers.clear() removes until none is left.
        self._pick_timer = _single_shot(self, 0, self._attach_first_image)
        self._connect_viewer()
        bind_shortcuts(self, napari_viewer)
        self._refresh_layer_choices()
        self._attach_first_image()

    # ============================ public API (documented in docs/user-guide.md) ============
    def set_image(self, layer, channel_first: bool = False, channels=(0, 1, 2)) -> None:
        """Segment ``layer`` (an Image layer or its name); creates the prompt/preview/labels
        layers. ``channel_first``: the first axis holds channels, ``channels`` go to R, G, B."""
        layer = self.viewer.layers[layer] if isinstance(layer, str) else layer
        with _signals_blocked(self.channel_check):  # no attach of the old image with these
            self.channel_check.setChecked(channel_first)
        self.channels_edit.setText(",".join(str(c) for c in channels))
        _select(self.image_combo, layer.name)
        self._attach_image(layer)

    def set_labels(self, layer) -> None:
        """Commit into ``layer`` (a Labels layer or its name) instead of a new one."""
        layer = self.viewer.layers[layer] if isinstance(layer, str) else layer
        self.labels_combo.setCurrentText(layer.name)
        self._attach_labels()

    def set_model(self, name: str, checkpoint=None, device=None, wait: bool = True) -> None:
        """Load a registry model (in a worker); ``wait`` blocks (events keep flowing)."""
        self.model_panel.select(name, checkpoint, device)
        self._load_model(name, str(checkpoint or ""), device or self.model_panel.device_combo.currentText())
        if wait:
            self.wait()

    def segment(self, points=None, labels=None, boxes=None, wait: bool = True) -> list[ObjectMask]:
        """Add prompts on the shown slice and return the masks of the current objects.

        points: (N, 2) row, col pixels of the image; labels: (N,) 1/0 (default all 1);
        boxes: (M, 4) row0, col0, row1, col1.  Computes the embedding if needed.
        """
        self._require_image()
        self._ensure_own_layers()
        prefix = list(self._shown_index())
        for i, rc in enumerate([] if points is None else points):
            positive = True if labels is None else bool(labels[i])
            self.prompts.add_points([prefix + list(rc)], positive)
        for r0, c0, r1, c1 in [] if boxes is None else boxes:
            corners = box_to_rectangle([c0, r0, c1, r1])  # x0, y0, x1, y1 -> 4 (row, col)
            self.prompts.add_box([prefix + list(v) for v in corners])
        self._decode_now()
        if wait:
            self.wait()  # the embedding (if needed), then the decode it schedules
        return self.masks

    def compute_embedding(self, wait: bool = True) -> None:
        """Embed the shown slice now (otherwise it happens at the first prompt)."""
        self._require_image()
        if not self._require_model() or self.store_panel.embed_all_tiles(wait):
            return  # no model yet, or a large slice: all its tiles
        if self.embeddings.request(self.source, self._shown_index()) is None and wait:
            self.wait()

    def commit(self, preserve: bool | None = None) -> list[int]:
        """Write the preview into the Labels layer (new ids, one undo step); clear prompts."""
        masks = [m for m in self.masks if m.bbox is not None]
        if not masks or self.source is None:
            show_info("Nothing to commit: click on an object first.")
            return []
        keep = self.preserve_check.isChecked() if preserve is None else preserve
        try:
            self._use_labels(self._commit_target())
            ids = self.writer.commit(self.index, masks, preserve=keep)
        except (SegAnyError, ValueError) as exc:  # checked before anything is written
            self.status_label.setText("Nothing was committed; the objects are kept.")
            show_error(f"Cannot commit: {exc}")
            return []
        self._reset_objects(clear_prompts=True)
        self.status_label.setText("Committed. Click on the next object." if ids else "Nothing written.")
        if ids:
            show_info(f"Committed object{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))} "
                      f"into {self.writer.layer.name!r}.")
        else:
            show_info("Nothing was written: the masks lie on existing objects (untick "
                      "'Preserve existing labels' to overwrite them).")
        return ids

    def discard(self) -> None:
        """Forget the current object(s) and their prompts on the shown slice."""
        self._reset_objects(clear_prompts=True)
        self.status_label.setText("Discarded. Click on an object.")

    def undo(self) -> None:
        """Ctrl+Z on the prompt layers: remove the last prompt of the shown slice if there is
        one, else undo the last edit (e.g. a commit) of the Labels layer."""
        if self.source is None:
            return
        self._ensure_own_layers()
        if not self.prompts.remove_last(self.source, self._shown_index()):
            if self.writer.layer is not None and self.writer.layer in self.viewer.layers:
                self.writer.layer.undo()

    def next_candidate(self, step: int = 1) -> ObjectMask | None:
        """Show the next of SAM's candidates for the active object."""
        if self.session is None:
            return None
        mask = self.session.cycle_candidate(step)
        self._show_masks()
        return mask

    def propagate(self, object_id: int | None = None, wait: bool = False):
        """Propagate a committed object (default: the last one) from the shown slice through
        z or t with the Propagate section's settings; one undo step (see propagation_panel)."""
        return self.propagation.propagate(object_id, wait=wait)

    def toggle_sign(self) -> bool:
        positive = self.prompts.toggle_sign()
        self._update_sign_label()
        return positive

    def cancel(self) -> None:
        """Cancel the running embedding."""
        self.embeddings.cancel()

    @property
    def masks(self) -> list[ObjectMask]:
        return [] if self.session is None else self.session.masks

    @property
    def busy(self) -> bool:
        return (self._model_worker is not None or self.embeddings.job is not None
                or self.decoder.busy)

    def wait(self, timeout: float = 600.0) -> None:
        """Process Qt events until no model load, foreground embedding or decode runs."""
        process_events_until(lambda: not (self.busy or self._decode_timer.isActive()),
                             timeout, "The Segment Anything widget")

    # ============================ UI =======================================================
    def _build_ui(self) -> None:
        build_controls(self)
        self.propagation = PropagationPanel(self)
        box = QGroupBox("Propagate through z / t")
        QVBoxLayout(box).addWidget(self.propagation)
        self.layout().insertWidget(self.layout().indexOf(self.status_label), box)
        self.store_panel = StorePanel(self)  # on-disk store + tiling of large slices
        store_box = QGroupBox("Embeddings on disk and tiling")
        QVBoxLayout(store_box).addWidget(self.store_panel)
        self.layout().insertWidget(self.layout().indexOf(self.status_label), store_box)
        self._set_embedding_busy(False)
        self._update_sign_label()

        self.image_combo.activated.connect(lambda _: self._attach_selected_image())
        self.channel_check.toggled.connect(lambda _: self._attach_selected_image())
        self.channels_edit.editingFinished.connect(self._attach_selected_image)
        self.labels_combo.activated.connect(lambda _: self._attach_labels())
        self.model_panel.load_requested.connect(self._load_model)
        self.split_check.toggled.connect(lambda _: self._schedule_decode())
        self.refine_check.toggled.connect(self._on_refine_toggled)
        self.cancel_button.clicked.connect(self.cancel)
        self.embed_button.clicked.connect(self._embed_clicked)
        self.candidate_button.clicked.connect(lambda: self.next_candidate())
        self.commit_button.clicked.connect(lambda: self.commit())
        self.discard_button.clicked.connect(self.discard)

    def _embed_clicked(self) -> None:
        try:
            self.compute_embedding(wait=False)
        except SegAnyError as exc:  # no image, or a slice the model cannot take
            show_warning(str(exc))

    def _update_sign_label(self) -> None:
        sign = "positive (green)" if self.prompts.positive else "negative (red)"
        self.sign_label.setText(f"Next points: {sign}. T toggles; middle-click adds a negative.")

    def _progress(self, fraction: float) -> None:
        self.progress.setValue(int(round(100 * fraction)))

    def _set_embedding_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy or self._model_worker is not None)
        self.cancel_button.setVisible(busy)
        self.progress.setValue(0)
        if busy:
            self.progress.setFormat("Computing the image embedding… %p%")
            self.status_label.setText("Computing the image embedding (the viewer stays usable).")

    def _embedding_failed(self, exc: Exception) -> None:
        self.status_label.setText("The embedding failed; nothing was written.")
        hint = "" if isinstance(exc, SegAnyError) else " Try a smaller image or another device."
        show_error(f"Could not compute the image embedding: {exc}.{hint}")

    # ============================ layers ===================================================
    def _connect_viewer(self) -> None:
        self.viewer.layers.events.inserted.connect(self._on_layer_inserted)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self.viewer.layers.events.connect(self._on_layer_event)
        self.viewer.dims.events.current_step.connect(self._on_step)

    def _disconnect_viewer(self) -> None:
        self.viewer.layers.events.inserted.disconnect(self._on_layer_inserted)
        self.viewer.layers.events.removed.disconnect(self._on_layer_removed)
        self.viewer.layers.events.disconnect(self._on_layer_event)
        self.viewer.dims.events.current_step.disconnect(self._on_step)

    def _refresh_layer_choices(self) -> None:
        images = [l.name for l in self.viewer.layers if isinstance(l, Image)]
        labels = [l.name for l in self.viewer.layers
                  if isinstance(l, Labels) and l.name not in OWN_LAYERS]
        _set_items(self.image_combo, images)
        _set_items(self.labels_combo, [NEW_LABELS] + labels)
        self._show_choices()

    def _show_choices(self) -> None:
        """Make the combo boxes name what is in use (after a rename or a refused pick)."""
        if self.source is not None:
            _select(self.image_combo, self.source.layer.name)
            with _signals_blocked(self.channel_check):
                self.channel_check.setChecked(self.source.channel_first)
            self.channels_edit.setText(",".join(str(c) for c in self.source.channels))
        if self.writer.layer is not None and self.writer.layer in self.viewer.layers:
            _select(self.labels_combo, self.writer.layer.name)

    def _on_layer_inserted(self, event) -> None:
        self._refresh_layer_choices()
        if isinstance(event.value, Image):
            self._attach_first_image(preferred=event.value)

    def _on_layer_event(self, event) -> None:
        if event.type == "name":  # a layer was renamed: the choices list names
            self._refresh_layer_choices()

    def _on_layer_removed(self, event) -> None:
        removed = event.value
        if self.source is not None and removed == self.source.layer:  # == : proxies
            self._detach_image()
        elif self.source is not None and self._is_own_layer(removed):
            self._schedule_decode()  # _decode_now re-creates it
        if self.writer.layer is not None and removed == self.writer.layer:
            self.writer.attach(None)  # the next commit creates (or adopts) one
        self.propagation.layer_removed(removed)
        self._refresh_layer_choices()
        if self.source is None:
            self._pick_timer.start()

    def _is_own_layer(self, layer) -> bool:
        own = (self.prompts.points, self.prompts.boxes, self.preview.layer)
        return any(o is not None and layer == o for o in own)

    def _attach_first_image(self, preferred=None) -> None:
        """Without an image, pick one by itself: ``preferred`` (a new layer) or the first
        image that can be segmented; if none can, say why for the first."""
        if self.source is not None or self.closed:
            return
        candidates = [preferred] if preferred is not None else []
        candidates += [l for l in self.viewer.layers if isinstance(l, Image)]
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
        """How the widget would read ``layer`` (the channel controls); ImageError if it cannot."""
        if not isinstance(layer, Image):
            raise ImageError(f"{layer.name!r} is a {type(layer).__name__} layer: pick an "
                             "Image layer to segment.")
        channels = tuple(int(c) for c in self.channels_edit.text().replace(" ", "").split(",") if c)
        source = ImageSource(layer, self.channel_check.isChecked(), channels)
        source.check()
        return source

    def _attach_image(self, layer) -> None:
        try:
            source = self._source_for(layer)
        except (ImageError, ValueError) as exc:
            show_error(f"Cannot segment this image: {exc}")
            self._show_choices()  # the controls keep naming the image in use
            return
        if self.source is not None:
            _disconnect_image(self.source.layer, self)
        self.embeddings.cancel()
        self.source, self._shape = source, source.spatial_shape
        self.store_panel.attach(layer)
        self._attach_own_layers(source)
        self._attach_labels(fitting_only=True)
        layer.events.data.connect(self._on_image_data)
        layer.events.contrast_limits.connect(self._on_contrast)
        self.viewer.layers.selection.active = self.prompts.points
        self._reset_objects(clear_prompts=False)

    def _detach_image(self) -> None:
        """The image layer is gone: stop the work on it. The model, its session and the
        committed labels stay; the objects of that image are dropped."""
        _disconnect_image(self.source.layer, self)
        self.embeddings.cancel()
        self.embeddings.cancel_prefetch()
        self.store_panel.detach()
        self._forget_objects()
        if self.preview.alive():
            self.preview.reset()
        self.source, self.index, self._shape = None, None, None
        self.status_label.setText("The image was removed: pick another one.")

    def _attach_own_layers(self, source) -> None:
        """The prompt and preview layers: created, or adopted by name."""
        self.prompts.attach(source)
        self.preview.attach(source)
        bind_shortcuts(self, self.prompts.points, self.prompts.boxes, prompt_layers=True)

    def _ensure_own_layers(self) -> None:
        """Re-create (or re-adopt) the prompt and preview layers if the user deleted them."""
        if self.source is None or (self.prompts.alive() and self.preview.alive()):
            return
        self._attach_own_layers(self.source)
        self.preview.show(self.masks)  # the preview starts empty
        self._move_own_layers_up()

    def _attach_labels(self, fitting_only: bool = False) -> None:
        if self.source is None:
            return
        name = self.labels_combo.currentText()
        chosen = self.viewer.layers[name] if name in self.viewer.layers else None
        if fitting_only and chosen is not None and chosen.data.shape != self.source.spatial_shape:
            chosen = None  # another image was picked: its own new Labels layer
        try:
            layer = ensure_labels(self.viewer, self.source, chosen or own_labels(self.viewer, self.source))
        except ValueError as exc:
            show_error(str(exc))
            self._show_choices()  # the combo keeps naming the layer commits go to
            return
        self._use_labels(layer)

    def _commit_target(self):
        """The Labels layer in use while it fits the image; a new (or adopted) one once the
        user deleted it. ValueError when its data no longer has the image's shape."""
        layer = self.writer.layer
        if layer is None or layer not in self.viewer.layers:
            layer = own_labels(self.viewer, self.source)
        return ensure_labels(self.viewer, self.source, layer)

    def _use_labels(self, layer) -> None:
        new = layer != self.writer.layer
        self.writer.attach(layer)
        _select(self.labels_combo, layer.name)
        self.propagation.sync()
        if new:
            self._move_own_layers_up()

    def _move_own_layers_up(self) -> None:
        """Keep the prompts and the preview drawn on top of the labels."""
        if self.prompts.alive() and self.preview.alive():
            for own in (self.preview.layer, self.prompts.boxes, self.prompts.points):
                self.viewer.layers.move(self.viewer.layers.index(own), len(self.viewer.layers))

    # ============================ model ====================================================
    def _load_model(self, name: str, checkpoint: str, device: str) -> None:
        if self._model_worker is not None:
            show_info("A model is already loading; wait for it to finish.")
            return
        self.model_panel.set_busy(True)
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)  # indeterminate: reading a file has no steps
        self.status_label.setText(f"Loading {name}…")
        self._model_worker = start_model_load(
            name, checkpoint or None, device or None,
            on_done=alive_only(self, self._model_loaded),
            on_error=alive_only(self, self._model_failed))

    def _model_loaded(self, model) -> None:
        self._model_done()
        self._forget_objects()
        self._offer_refinement(model.spec)
        if model.spec.task == INSTANCE:  # FastSAM: prompts select among its masks
            self.predictor = FastSAMPredictor(model)
            self.session = FastSAMSession(self.predictor)
        else:
            self.predictor = Predictor(model)
            self.session = InteractiveSession(self.predictor,
                                              refine_with_mask=self.refine_check.isChecked())
        self.embeddings.set_predictor(self.predictor)
        self._embedded_key = None
        self.status_label.setText(f"{model.spec.name} ready on {self.predictor.device}: click "
                                  "on an object (Points layer), or draw a box (Shapes layer).")
        self.model_panel.update_info()
        self._schedule_decode()


    def _offer_refinement(self, spec) -> None:
        """Mask-prompt refinement exists only for models that take a mask prompt."""
        supported = spec.supports_mask_input
        self.refine_check.setEnabled(supported)
        self.refine_check.setChecked(supported)
        if not supported:
            self.refine_check.setToolTip(f"{spec.name} takes no mask prompt: each decode uses "
                                         "the points and boxes only.")

    def _on_refine_toggled(self, checked: bool) -> None:
        sessions = (self.session, getattr(self.store_panel, "session", None))
        for session in sessions:
            if session is not None:
                session.refine_with_mask = bool(checked)
    def _model_failed(self, exc: Exception) -> None:
        self._model_done()
        still = self.predictor.spec.name if self.predictor is not None else None
        self.status_label.setText(f"Could not load the model; {still} is still in use." if still
                                  else "No model loaded.")
        show_error(f"Could not load the model: {exc}" if not isinstance(exc, SegAnyError)
                   else str(exc))

    def _model_done(self) -> None:
        self._model_worker = None
        self.model_panel.set_busy(False)
        self.progress.setRange(0, 100)
        self.progress.setVisible(self.embeddings.job is not None)

    # ============================ prompts -> preview =======================================
    def _schedule_decode(self) -> None:
        self._decode_timer.start()

    def _decode_now(self) -> None:
        self._decode_timer.stop()
        if self.source is None or self.closed:
            return
        self._ensure_own_layers()
        index = self._shown_index()
        if index != self.index:
            self._change_slice(index)
        fitted = fit_prompts(*self.prompts.prompts_on(self.source, index),
                             self.source.spatial_shape[-2:])
        self._say_left_out(fitted)
        prompts = group_prompts(fitted.points_xy, fitted.labels, fitted.boxes,
                                self.split_check.isChecked())
        if not prompts:
            self._show_objects([])
            return
        if not self._require_model() or not self._use_embedding(index):
            return
        self._show_objects(prompts)

    def _show_objects(self, prompts) -> None:
        if self.session is not None:
            self.decoder.submit(self.session, prompts)

    def _say_left_out(self, fitted) -> None:
        """Warn when prompts off the image are ignored: once, not at every later click."""
        if any(fitted.left_out) and fitted.left_out != self._left_out:
            show_warning(fitted.describe_left_out())
        self._left_out = fitted.left_out

    def _decode_failed(self, exc) -> None:
        if isinstance(exc, PromptError):
            show_warning(str(exc))
        else:
            show_error(f"Could not decode the prompts: {exc}")

    def _forget_objects(self) -> None:
        """Objects are cleared: drop decodes in flight and pending prompts."""
        self.decoder.invalidate()
        if self.session is not None:
            self.session.clear()

    def _use_embedding(self, index) -> bool:
        """Make the predictor hold the slice's embedding; False while it is being computed."""
        if self.store_panel.use_tiles(index):
            return True  # a large slice: the tiled session embeds tiles as prompts need them
        try:
            key = self.embeddings.key_for(self.source, index)
            if getattr(self, "_embedded_key", None) == key:
                return True
            entry = self.embeddings.request(self.source, index)
        except (ImageError, SegAnyError) as exc:
            show_error(f"Cannot embed this slice: {exc}")
            return False
        if entry is None:
            return False
        self.predictor.set_embedding(entry.features, entry.original_size)
        self._embedded_key = key
        self._forget_objects()  # logits of another embedding cannot be fed back
        self._prefetch_neighbours(index)
        return True

    def _show_masks(self) -> None:
        masks = self.masks
        self.preview.show(masks)
        active = self.session.mask_of(self.session.active_key) if self.session else None
        if active is not None and active.bbox is not None:
            self.status_label.setText(
                f"{len(masks)} object(s). Active: score {active.score:.2f}, candidate "
                f"{active.candidate + 1}/{active.n_candidates}. C commits, Shift+C discards.")

    def _prefetch_neighbours(self, index) -> None:
        if self.prefetch_check.isChecked() and index:
            limit = self.source.spatial_shape[0]
            near = [(index[0] + d, *index[1:]) for d in (1, -1) if 0 <= index[0] + d < limit]
            self.embeddings.prefetch(self.source, near)

    # ============================ slices, image changes ====================================
    def _shown_index(self) -> tuple:
        return self.source.index_from_world(self.viewer.dims.point)

    def _on_step(self, event=None) -> None:
        if self.source is not None and self._shown_index() != self.index:
            self._schedule_decode()

    def _change_slice(self, index) -> None:
        """The preview and objects belong to one slice: start afresh on another one."""
        self.index = index
        self._forget_objects()
        self.preview.reset()

    def _on_image_data(self, event=None) -> None:
        if self.source is None:
            return
        self.embeddings.forget_digests()
        self._embedded_key = None
        try:
            self.source.check()
        except ImageError as exc:  # e.g. replaced by an empty or 5D array
            show_error(f"Cannot segment {self.source.layer.name!r} any more: {exc}")
            self._detach_image()
            return
        if self.source.spatial_shape != self._shape:
            self._attach_image(self.source.layer)  # the shape changed: new labels and prompts
            return
        self._schedule_decode()

    def _on_contrast(self, event=None) -> None:
        self._contrast_timer.start()

    def _contrast_settled(self) -> None:
        self._embedded_key = None  # the key holds the limits: the next decode re-embeds
        self._schedule_decode()

    def _reset_objects(self, clear_prompts: bool) -> None:
        # A new object: hash the slice again at its first click (1-2 ms), so in-place edits
        # of the image data, which napari does not announce, are noticed too.
        self.embeddings.forget_digests()
        if clear_prompts and self.source is not None and self.index is not None:
            self.prompts.clear_slice(self.source, self.index)
        self._forget_objects()
        if self.preview.alive():
            self.preview.reset()
        self.index = self._shown_index() if self.source is not None else None

    # ============================ checks ===================================================
    def _require_image(self) -> None:
        if self.source is None:
            raise ImageError("No image: open one (File > Open Sample > SegAny) and pick it in "
                             "the widget, or call set_image(layer).")

    def _require_model(self) -> bool:
        if self.predictor is not None:
            return True
        if self._model_worker is None and not self._warned_no_model:
            self._warned_no_model = True  # once: every click would repeat it
            show_warning("Load a model first (Model > Load model); the prompts are kept.")
        return False

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
        """Stop all work and let go of the viewer (events, shortcuts), so that nothing reacts
        to this widget any more and no thread is left running. Layers and labels stay."""
        if self.closed:
            return
        self.closed = True  # from now on worker results are dropped (alive_only)
        for timer in (self._decode_timer, self._contrast_timer, self._pick_timer):
            timer.stop()
        self.propagation.cancel()  # its worker ends with Cancelled: nothing is written
        self.store_panel.cancel()
        self.embeddings.cancel()
        self.embeddings.cancel_prefetch()
        self.decoder.invalidate()
        self._disconnect_viewer()
        if self.source is not None:
            _disconnect_image(self.source.layer, self)
        self.prompts.detach()
        self.writer.attach(None)
        self.propagation.release()
        unbind_shortcuts(self, self.viewer, self.prompts.points, self.prompts.boxes)


def _single_shot(parent, ms: int, slot) -> QTimer:
    timer = QTimer(parent)
    timer.setSingleShot(True)
    timer.setInterval(ms)
    timer.timeout.connect(slot)
    return timer


class _signals_blocked:
    """``with _signals_blocked(control):`` set a control without running its handlers."""

    def __init__(self, control):
        self.control = control

    def __enter__(self):
        self._was = self.control.blockSignals(True)

    def __exit__(self, *exc):
        self.control.blockSignals(self._was)


def _select(combo: QComboBox, text: str) -> None:
    with _signals_blocked(combo):
        combo.setCurrentText(text)


def _set_items(combo: QComboBox, items: list[str]) -> None:
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(items)
    if current in items:
        combo.setCurrentText(current)
    combo.blockSignals(False)


def _disconnect_image(layer, widget) -> None:
    layer.events.data.disconnect(widget._on_image_data)
    layer.events.contrast_limits.disconnect(widget._on_contrast)

"""The "Segment Anything" dock widget: click on an object, see its mask, press C, next object.

Scripting (a notebook user can do everything a GUI user does)::

    dock, w = viewer.window.add_plugin_dock_widget("napari-segany", "Segment Anything")
    w.set_image("cell (2D)")                       # a layer or its name
    w.set_model("mobile_sam")                      # or checkpoint="/path/mobile_sam.pt"; waits
    masks = w.segment(points=[[120, 80]])          # (row, col) on the shown slice; waits
    w.next_candidate()                             # another of the 3 candidates
    ids = w.commit()                               # new label ids, undo with labels.undo()
    w.propagate(wait=True)                         # that object through z / t (Shift+S)

Parts, composed here and talking through public methods and Qt signals: the image sessions
(:mod:`.sessions`, one :class:`~.image_session.ImageSession` per image layer), the model
(:mod:`.model_slot`), prompts -> preview (:mod:`.preview`), the propagation and store panels.
Threads: the model loads and the embedding is computed in napari workers (progress bar,
Cancel); the decoder runs in a worker too, latest prompts first (see :mod:`.decoding`).
"""
from __future__ import annotations

from qtpy.QtWidgets import QWidget

from ...engine.embeddings import EmbeddingCache
from ...engine.errors import ImageError, SegAnyError
from ...engine.interactive import ObjectMask, box_to_rectangle
from ..shared import notify
from ..shared.precision_choice import precision_note
from ..shared.qt_helpers import ShutsDownWhenClosed
from ..shared.warm_up import import_in_background
from ..shared.workers import alive_only, process_events_until
from .controls import add_panels, build_controls
from .decoding import DecodeQueue
from .embeddings import EmbeddingManager
from .keybindings import bind_shortcuts, unbind_shortcuts
from .model_slot import ModelSlot
from .preview import PromptPreview
from .propagation_panel import PropagationPanel
from .sessions import ImageSessions
from .store_panel import StorePanel
from .activity import Activity


def _of_image_session(name: str, without=lambda: None, doc: str | None = None) -> property:
    """A read-only property: ``name`` of the current ImageSession, ``without()`` when no
    image is chosen (the widget's API reads the image being segmented)."""
    def read(widget):
        current = widget.images.current
        return without() if current is None else getattr(current, name)
    return property(read, doc=doc)


class SegAnyWidget(ShutsDownWhenClosed, QWidget):
    """Interactive segmentation of the shown slice with points and boxes into Labels."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        import_in_background()  # napari's first layers of this dock would import them
        self.viewer = napari_viewer
        self.cache = EmbeddingCache()
        self.closed = False  # closed or taken out of its dock: worker results are dropped
        build_controls(self)
        self.images = ImageSessions(napari_viewer, self, self)
        self.model = ModelSlot(self.model_panel.file_checks, self)
        self.store_panel = StorePanel(self.cache)  # on-disk store + tiling of large slices
        self.propagation = PropagationPanel(self)
        add_panels(self, self.propagation, self.store_panel)
        self.activity = Activity(self.job_progress, self.model_panel, self.model, self.say)
        # Worker results arrive through the event loop, possibly after the widget closed.
        self.decoder = DecodeQueue(on_result=alive_only(self, self._decoded),
                                   on_error=alive_only(self, self._decode_failed))
        activity = self.activity
        self.embeddings = EmbeddingManager(
            self.cache, on_ready=alive_only(self, lambda job: self.prompt_preview.schedule()),
            on_progress=alive_only(self, activity.embedding_progress),
            on_busy=alive_only(self, activity.embedding_busy),
            on_error=alive_only(self, activity.embedding_failed),
            on_cancelled=alive_only(self, activity.embedding_cancelled))
        self.prompt_preview = PromptPreview(napari_viewer, self.images, self.model,
                                            self.embeddings, self.decoder, self,
                                            self.store_panel, self.cache, self)
        self._connect()
        bind_shortcuts(self, napari_viewer)
        activity.embedding_busy(False)
        self._update_sign_label()
        self.images.refresh_choices()
        self.images.choose_first_image()

    # ============================ public API (documented in docs/user-guide.md) ============
    def set_image(self, layer, channel_first: bool = False, channels=(0, 1, 2)) -> None:
        """Segment ``layer`` (an Image layer or its name) in its own session: its prompt,
        preview and labels layers, made the first time. ``channel_first``: the first axis
        holds channels, ``channels`` go to R, G, B."""
        layer = self.viewer.layers[layer] if isinstance(layer, str) else layer
        self.images.choose(layer, channel_first, channels)

    def set_labels(self, layer) -> None:
        """Commit into ``layer`` (a Labels layer or its name) instead of a new one."""
        layer = self.viewer.layers[layer] if isinstance(layer, str) else layer
        self.images.set_labels(layer)

    def set_model(self, name: str, checkpoint=None, device=None, wait: bool = True,
                  precision: str | None = None) -> None:
        """Load a registry model (in a worker); ``wait`` blocks (events keep flowing).
        ``precision``: "auto", "fp32" or "bf16" (None: the panel's choice)."""
        self.model_panel.select(name, checkpoint, device, precision)
        self.model.load(name, str(checkpoint or ""),
                        device or self.model_panel.device_combo.currentText(),
                        self.model_panel.precision)
        if wait:
            self.wait()

    def segment(self, points=None, labels=None, boxes=None, wait: bool = True) -> list[ObjectMask]:
        """Add prompts on the shown slice and return the masks of the current objects.

        points: (N, 2) row, col pixels of the image; labels: (N,) 1/0 (default all 1);
        boxes: (M, 4) row0, col0, row1, col1.  Computes the embedding if needed.
        """
        session = self._require_image()
        self.images.ensure_layers(session)
        prefix = list(self.prompt_preview.shown_index())
        for i, rc in enumerate([] if points is None else points):
            positive = True if labels is None else bool(labels[i])
            session.prompts.add_points([prefix + list(rc)], positive)
        for r0, c0, r1, c1 in [] if boxes is None else boxes:
            corners = box_to_rectangle([c0, r0, c1, r1])  # x0, y0, x1, y1 -> 4 (row, col)
            session.prompts.add_box([prefix + list(v) for v in corners])
        self.prompt_preview.decode_now()
        if wait:
            self.wait()  # the embedding (if needed), then the decode it schedules
        return self.masks

    def compute_embedding(self, wait: bool = True) -> None:
        """Embed the shown slice now (otherwise it happens at the first prompt); a large
        slice: all its tiles."""
        session = self._require_image()
        if not self.model.require():
            return
        index = self.prompt_preview.shown_index()
        tiled = self.prompt_preview.tiled_slice(session, index)
        if tiled is not None:
            self.store_panel.embed_tiles(tiled.predictor, wait)
        elif self.embeddings.request(session.source, index) is None and wait:
            self.wait()

    def commit(self, preserve: bool | None = None) -> list[int]:
        """Write the preview into the Labels layer (new ids, one undo step); clear prompts."""
        session = self.image_session
        masks = [m for m in self.masks if m.bbox is not None]
        if not masks or session is None:
            notify.info("Nothing to commit: click on an object first.")
            return []
        keep = self.preserve_check.isChecked() if preserve is None else preserve
        try:
            self.images.commit_target(session)
            ids = session.writer.commit(session.index, masks, preserve=keep)
        except (SegAnyError, ValueError) as exc:  # checked before anything is written
            self.say("Nothing was committed; the objects are kept.")
            notify.error(f"Cannot commit: {exc}")
            return []
        self.prompt_preview.reset_objects(session, clear_prompts=True)
        self.say("Committed. Click on the next object." if ids else "Nothing written.")
        if ids:
            notify.info(f"Committed object{'s' if len(ids) > 1 else ''} "
                        f"{', '.join(map(str, ids))} into {session.writer.layer.name!r}.")
        else:
            notify.info("Nothing was written: the masks lie on existing objects (untick "
                        "'Preserve existing labels' to overwrite them).")
        return ids

    def discard(self) -> None:
        """Forget the current object(s) and their prompts on the shown slice."""
        self.prompt_preview.reset_objects(self.image_session, clear_prompts=True)
        self.say("Discarded. Click on an object.")

    def undo(self) -> None:
        """Ctrl+Z on the prompt layers: remove the last prompt of the shown slice if there is
        one, else undo the last edit (e.g. a commit) of the Labels layer."""
        session = self.image_session
        if session is None:
            return
        self.images.ensure_layers(session)
        if not session.prompts.remove_last(session.source, self.prompt_preview.shown_index()):
            if session.writer.layer is not None and session.writer.layer in self.viewer.layers:
                session.writer.layer.undo()

    def next_candidate(self, step: int = 1) -> ObjectMask | None:
        """Show the next of SAM's candidates for the active object."""
        if self.session is None:
            return None
        mask = self.session.cycle_candidate(step)
        self.prompt_preview.show_masks()
        return mask

    def propagate(self, object_id: int | None = None, wait: bool = False, method=None):
        """Propagate a committed object (default: the last one) from the shown slice through
        z or t with the Propagate section's settings; one undo step (see propagation_panel).
        ``method="memory"``: every object of the slice with SAM 2's memory (corrections: the
        clicks on the shown slice, for ``object_id`` or the Labels layer's selected label)."""
        return self.propagation.propagate(object_id, wait=wait, method=method)

    def toggle_sign(self) -> bool:
        session = self.image_session
        positive = session.prompts.toggle_sign() if session is not None else True
        self._update_sign_label()
        return positive

    def cancel(self) -> None:
        """Cancel the running embedding."""
        self.embeddings.cancel()

    def install_model(self, model) -> None:
        """Use an already loaded model (what the loading worker hands back)."""
        self.model.install(model)

    # ---------------------------------------------------------------- the current state
    @property
    def image_session(self):
        """The ImageSession of the image being segmented (None: no image)."""
        return self.images.current

    source = _of_image_session("source", doc="The ImageSource of the image being segmented.")
    index = _of_image_session("index", doc="The slice the current objects belong to.")
    prompts = _of_image_session("prompts")
    preview = _of_image_session("preview")
    writer = _of_image_session("writer")
    session = _of_image_session("objects", doc="The InteractiveSession of the current objects "
                                "(tiled on a large slice).")
    masks = _of_image_session("masks", list, "The current objects' masks (ObjectMask).")

    @property
    def predictor(self):
        return self.model.predictor

    @property
    def busy(self) -> bool:
        return self.model.busy or self.embeddings.job is not None or self.decoder.busy

    def wait(self, timeout: float = 600.0) -> None:
        """Process Qt events until no model load, foreground embedding or decode runs."""
        timer = self.prompt_preview.decode_timer
        process_events_until(lambda: not (self.busy or timer.isActive()), timeout,
                             "The Segment Anything widget")

    def say(self, text: str) -> None:
        """The status line, which describes the current image's session."""
        self.status_label.setText(text)
        if self.image_session is not None:
            self.image_session.status = text

    # ============================ wiring ===================================================
    def _connect(self) -> None:
        images, model = self.images, self.model
        self.image_combo.activated.connect(lambda _: images.choose_selected())
        self.channel_check.toggled.connect(lambda _: images.choose_selected())
        self.channels_edit.editingFinished.connect(images.choose_selected)
        self.labels_combo.activated.connect(lambda _: images.choose_labels())
        self.model_panel.load_requested.connect(model.load)
        self.split_check.toggled.connect(lambda _: self.prompt_preview.schedule())
        self.refine_check.toggled.connect(self._on_refine_toggled)
        self.cancel_button.clicked.connect(self.cancel)
        self.embed_button.clicked.connect(self._embed_clicked)
        self.candidate_button.clicked.connect(lambda: self.next_candidate())
        self.commit_button.clicked.connect(lambda: self.commit())
        self.discard_button.clicked.connect(self.discard)
        model.loading.connect(self.activity.model_loading)
        model.loaded.connect(self._model_loaded)
        model.failed.connect(self.activity.model_failed)
        images.switched.connect(self._switched)
        images.prompts_changed.connect(self._prompts_changed)
        images.own_layer_removed.connect(self._prompts_changed)
        images.layers_made.connect(self._bind_prompt_layers)
        images.labels_changed.connect(lambda session: self.propagation.sync())
        images.status.connect(self.say)
        self.prompt_preview.status.connect(self.say)
        self.prompt_preview.failed.connect(self.say)
        images.connect_viewer()
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self.viewer.dims.events.current_step.connect(self.prompt_preview.on_step)
        self.viewer.dims.events.current_step.connect(self.propagation.refresh)
        model.loaded.connect(self.propagation.refresh)

    def _model_loaded(self, predictor) -> None:
        self.activity.model_done()
        for session in self.images.sessions:
            session.status = ""  # each image's line now starts from the new model
        self._offer_refinement(predictor.spec)
        self.embeddings.set_predictor(predictor)
        self.prompt_preview.model_changed()
        self.say(self._ready_text())

    def _offer_refinement(self, spec) -> None:
        """Mask-prompt refinement exists only for models that take a mask prompt."""
        supported = spec.supports_mask_input
        self.refine_check.setEnabled(supported)
        self.refine_check.setChecked(supported)
        if not supported:
            self.refine_check.setToolTip(f"{spec.name} takes no mask prompt: each decode uses "
                                         "the points and boxes only.")

    def _ready_text(self) -> str:
        predictor, session = self.model.predictor, self.image_session
        image = f" of {session.layer.name!r}" if session is not None else ""
        if predictor is None:
            return f"Load a model, then click on an object{image}."
        layers = (f" ({session.prompts.points.name!r} layer), or draw a box "
                  f"({session.prompts.boxes.name!r})" if session is not None else "")
        return (f"{predictor.spec.name} ready on {predictor.device}"
                f"{precision_note(predictor.model)}: click on an object{image}{layers}.")

    def _switched(self, old, new) -> None:
        self.prompt_preview.switched(old, new)
        self.store_panel.attach(new.layer if new is not None else None)
        self.propagation.sync()
        if new is not None:
            self.say(new.status or self._ready_text())
            self._update_sign_label()

    def _prompts_changed(self, session) -> None:
        if session is self.image_session:
            self.prompt_preview.schedule()
            self.propagation.refresh()  # clicks on a slice make a SAM 2 memory correction

    def _bind_prompt_layers(self, session) -> None:
        bind_shortcuts(self, session.prompts.points, session.prompts.boxes, prompt_layers=True)

    def _on_layer_removed(self, event) -> None:
        self.propagation.layer_removed(event.value)

    def _embed_clicked(self) -> None:
        try:
            self.compute_embedding(wait=False)
        except SegAnyError as exc:  # no image, or a slice the model cannot take
            notify.warning(str(exc))

    def _on_refine_toggled(self, checked: bool) -> None:
        for session in self.images.sessions:
            session.set_refine(bool(checked))

    def _update_sign_label(self) -> None:
        session = self.image_session
        positive = session.prompts.positive if session is not None else True
        sign = "positive (green)" if positive else "negative (red)"
        self.sign_label.setText(f"Next points: {sign}. T toggles; middle-click adds a negative.")

    def _decoded(self) -> None:
        self.prompt_preview.show_masks()

    def _decode_failed(self, exc) -> None:
        self.prompt_preview.decode_failed(exc)

    def _require_image(self):
        if self.image_session is None:
            raise ImageError("No image: open one (File > Open Sample > SegAny) and pick it in "
                             "the widget, or call set_image(layer).")
        return self.image_session

    # ============================ closing ==================================================
    def _shut_down(self) -> None:
        """Stop all work and let go of the viewer (events, shortcuts), so that nothing reacts
        to this widget any more and no thread is left running. Layers and labels stay."""
        if self.closed:
            return
        self.closed = True  # from now on worker results are dropped (alive_only)
        self.model.closed = True
        self.prompt_preview.close()
        self.propagation.cancel()  # its worker ends with Cancelled: nothing is written
        self.store_panel.cancel()
        self.embeddings.cancel()
        self.embeddings.cancel_prefetch()
        self.viewer.layers.events.removed.disconnect(self._on_layer_removed)
        self.viewer.dims.events.current_step.disconnect(self.prompt_preview.on_step)
        self.viewer.dims.events.current_step.disconnect(self.propagation.refresh)
        prompt_layers = [layer for session in self.images.sessions
                         for layer in (session.prompts.points, session.prompts.boxes)]
        self.images.close()
        self.propagation.release()
        unbind_shortcuts(self, self.viewer, *prompt_layers)

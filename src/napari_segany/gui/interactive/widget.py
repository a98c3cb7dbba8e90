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

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import QGroupBox, QVBoxLayout, QWidget

from ..engine.embeddings import EmbeddingCache
from ..engine.errors import ImageError, SegAnyError
from ..engine.interactive import InteractiveSession, ObjectMask, Predictor, box_to_rectangle
from .decoding import DecodeQueue
from .embeddings import EmbeddingManager
from .image_slice import ImageSource
from .keybindings import bind_shortcuts, unbind_shortcuts
from .labels_io import LabelsWriter, PreviewLayer
from .prompt_layers import PromptLayers
from .propagation_panel import PropagationPanel
from .qt_helpers import ShutsDownWhenClosed, select_quietly, signals_blocked, single_shot_timer
from .segany_layers import LayerBookkeeping
from .segany_model import ModelLoading
from .segany_preview import PromptPreview
from .segany_ui import build_controls
from .store_panel import StorePanel
from .workers import alive_only, process_events_until

DECODE_DEBOUNCE_MS = 15  # coalesces the bursts of events of one edit (add + select + ...)
CONTRAST_DEBOUNCE_MS = 400  # a contrast slider drag re-embeds once, when it stops


class SegAnyWidget(LayerBookkeeping, ModelLoading, PromptPreview, ShutsDownWhenClosed, QWidget):
    """Interactive segmentation of the shown slice with points and boxes into Labels.

    This class holds the state and the public scripting API; the mixins hold the rest, one
    concern each: layers (``segany_layers.py``), the model (``segany_model.py``) and the
    prompts-to-preview decoding (``segany_preview.py``).
    """

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
        self._decode_timer = single_shot_timer(self, DECODE_DEBOUNCE_MS, self._decode_now)
        self._contrast_timer = single_shot_timer(self, CONTRAST_DEBOUNCE_MS, self._contrast_settled)
        # After a removal, not during it: napari's layers.clear() removes until none is left.
        self._pick_timer = single_shot_timer(self, 0, self._attach_first_image)
        self._connect_viewer()
        bind_shortcuts(self, napari_viewer)
        self._refresh_layer_choices()
        self._attach_first_image()

    # ============================ public API (documented in docs/user-guide.md) ============
    def set_image(self, layer, channel_first: bool = False, channels=(0, 1, 2)) -> None:
        """Segment ``layer`` (an Image layer or its name); creates the prompt/preview/labels
        layers. ``channel_first``: the first axis holds channels, ``channels`` go to R, G, B."""
        layer = self.viewer.layers[layer] if isinstance(layer, str) else layer
        with signals_blocked(self.channel_check):  # no attach of the old image with these
            self.channel_check.setChecked(channel_first)
        self.channels_edit.setText(",".join(str(c) for c in channels))
        select_quietly(self.image_combo, layer.name)
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

    # ============================ checks ===================================================
    def _require_image(self) -> None:
        if self.source is None:
            raise ImageError("No image: open one (File > Open Sample > SegAny) and pick it in "
                             "the widget, or call set_image(layer).")

    # ============================ closing ==================================================
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
            self._unwatch_image(self.source.layer)
        self.prompts.detach()
        self.writer.attach(None)
        self.propagation.release()
        unbind_shortcuts(self, self.viewer, self.prompts.points, self.prompts.boxes)

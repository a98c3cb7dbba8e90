"""Prompts to preview in the Segment Anything dock: the prompts of the current image's
shown slice are decoded (debounced, in a worker) into masks on that image's preview layer,
with the slice's embedding computed or taken from the cache first; a new slice or changed
image data starts afresh.  Switching images keeps each image's objects: coming back shows
them again without decoding anything that did not change.
"""
from __future__ import annotations

from qtpy.QtCore import QObject, Signal

from ...engine.errors import ImageError, PromptError, SegAnyError
from ...engine.interactive import fit_prompts, group_prompts
from ..shared import notify
from ..shared.qt_helpers import single_shot_timer
from .image_session import ImageSession
from .large_slices import tiled_slice

DECODE_DEBOUNCE_MS = 15  # coalesces the bursts of events of one edit (add + select + ...)
CONTRAST_DEBOUNCE_MS = 400  # a contrast slider drag re-embeds once, when it stops


class PromptPreview(QObject):
    """Decode the current session's prompts into its preview; follow slices and image edits.

    ``status(text)``: what the user sees happening (objects, scores); ``failed(text)``:
    a decode or an embedding could not be made (one notification was shown).
    """

    status = Signal(str)
    failed = Signal(str)

    def __init__(self, viewer, sessions, model, embeddings, decoder, options, store_panel,
                 cache, parent=None):
        super().__init__(parent)
        self.viewer, self.sessions, self.model = viewer, sessions, model
        self.embeddings, self.decoder, self.cache = embeddings, decoder, cache
        self.options = options  # split_check, prefetch_check, refine_check
        self.store_panel = store_panel  # tiling_settings()
        self.closed = False
        self.embedded_key = None  # the embedding the model's predictor holds
        self._watched = None  # the image layer whose edits are followed
        self.decode_timer = single_shot_timer(self, DECODE_DEBOUNCE_MS, self.decode_now)
        self._contrast_timer = single_shot_timer(self, CONTRAST_DEBOUNCE_MS, self._contrast_settled)

    # ================================================================ decoding
    def schedule(self) -> None:
        self.decode_timer.start()

    def decode_now(self) -> None:
        self.decode_timer.stop()
        session = self.sessions.current
        if session is None or self.closed:
            return
        self.sessions.ensure_layers(session)
        index = self.shown_index()
        if index != session.index:
            self._change_slice(session, index)
        fitted = fit_prompts(*session.prompts.prompts_on(session.source, index),
                             session.source.spatial_shape[-2:])
        self._say_left_out(session, fitted)
        prompts = group_prompts(fitted.points_xy, fitted.labels, fitted.boxes,
                                self.options.split_check.isChecked())
        if prompts and not (self.model.require() and self._use_embedding(session, index)):
            return
        if session.plain is None and self.model.predictor is not None:  # a new image
            session.use_predictor(self.model.predictor, self.options.refine_check.isChecked())
        if session.objects is not None:
            self.decoder.submit(session.objects, prompts)

    def show_masks(self) -> None:
        """The decoder's result: the current session's objects on its preview."""
        session = self.sessions.current
        if session is None:
            return
        session.preview.show(session.masks)
        objects = session.objects
        active = objects.mask_of(objects.active_key) if objects is not None else None
        if active is not None and active.bbox is not None:
            self.status.emit(
                f"{len(session.masks)} object(s). Active: score {active.score:.2f}, candidate "
                f"{active.candidate + 1}/{active.n_candidates}. C commits, Shift+C discards.")

    def decode_failed(self, exc) -> None:
        if isinstance(exc, PromptError):
            notify.warning(str(exc))
            self.failed.emit(f"These prompts cannot be decoded: {exc}")
        else:
            notify.error(f"Could not decode the prompts: {exc}")
            self.failed.emit("Could not decode the prompts (see the message); nothing was "
                             "written. Remove the last prompt (Ctrl+Z) or try another model.")

    def _say_left_out(self, session: ImageSession, fitted) -> None:
        """Warn when prompts off the image are ignored: once, not at every later click."""
        if any(fitted.left_out) and fitted.left_out != session.left_out:
            notify.warning(fitted.describe_left_out())
        session.left_out = fitted.left_out

    # ================================================================ embeddings
    def _use_embedding(self, session: ImageSession, index) -> bool:
        """Make the session's objects decodable on slice ``index``: the model's predictor
        holds its embedding, or its tiles are set up; False while it is being computed."""
        try:
            key = self.embeddings.key_for(session.source, index)
            if self._use_tiles(session, index, key):
                return True
            if self.embedded_key != key:
                entry = self.embeddings.request(session.source, index)
                if entry is None:
                    return False
                self.model.predictor.set_embedding(entry)
                self.embedded_key = key
                self._prefetch_neighbours(session, index)
        except (ImageError, SegAnyError) as exc:
            notify.error(f"Cannot embed this slice: {exc}")
            self.failed.emit(f"This slice cannot be embedded: {exc}")
            return False
        if session.embedding_key != key:
            self.forget(session)  # logits of another embedding cannot be fed back
            session.embedding_key = key
        return True

    def tiled_slice(self, session: ImageSession, index):
        """The session's TiledSlice for slice ``index`` when it is large, else None."""
        key = self.embeddings.key_for(session.source, index)
        return session.tiled if self._use_tiles(session, index, key) else None

    def _use_tiles(self, session: ImageSession, index, key) -> bool:
        """True when slice ``index`` is large: the session's tiled objects are in use."""
        try:
            tiled = tiled_slice(self.model.predictor.model, session.source, index, key,
                                self.store_panel.tiling_settings(), self.cache,
                                self.options.refine_check.isChecked(), session.tiled)
        except (SegAnyError, ValueError) as exc:
            notify.error(f"Cannot tile this slice: {exc}")
            tiled = None
        if tiled is not session.tiled:
            self.decoder.invalidate()  # the objects of the other predictor are not these
            session.tiled = tiled
            if tiled is not None:
                self.status.emit(tiled.describe())
        return tiled is not None

    def _prefetch_neighbours(self, session: ImageSession, index) -> None:
        if self.options.prefetch_check.isChecked() and index:
            limit = session.source.spatial_shape[0]
            near = [(index[0] + d, *index[1:]) for d in (1, -1) if 0 <= index[0] + d < limit]
            self.embeddings.prefetch(session.source, near)

    # ================================================================ objects
    def forget(self, session: ImageSession | None) -> None:
        """The session's objects are cleared: drop decodes in flight and pending prompts."""
        self.decoder.invalidate()
        if session is not None:
            session.forget_objects()

    def reset_objects(self, session: ImageSession | None, clear_prompts: bool) -> None:
        """Start a new object on the shown slice (after a commit, a discard)."""
        # Hash the slice again at its first click (1-2 ms), so in-place edits of the image
        # data, which napari does not announce, are noticed too.
        self.embeddings.forget_digests()
        if session is None:
            return
        if clear_prompts and session.index is not None:
            session.prompts.clear_slice(session.source, session.index)
        self.forget(session)
        if session.preview.alive():
            session.preview.reset()
        session.index = self.shown_index()

    def model_changed(self) -> None:
        """Another model: every session decodes again with it (its objects start afresh)."""
        self.decoder.invalidate()
        self.embedded_key = None
        for session in self.sessions.sessions:
            session.use_predictor(self.model.predictor, self.options.refine_check.isChecked())
        self.schedule()

    def _change_slice(self, session: ImageSession, index) -> None:
        """The preview and objects belong to one slice: start afresh on another one."""
        session.index = index
        self.forget(session)
        session.preview.reset()

    # ================================================================ slices, images
    def shown_index(self) -> tuple:
        session = self.sessions.current
        return () if session is None else session.source.index_from_world(self.viewer.dims.point)

    def on_step(self, event=None) -> None:
        session = self.sessions.current
        if session is not None and self.shown_index() != session.index:
            self.schedule()

    def switched(self, old: ImageSession | None, new: ImageSession | None) -> None:
        """Another image: follow its edits; its objects come back as they were."""
        self.decoder.invalidate()
        self.embeddings.cancel()
        self.embeddings.forget_digests()
        self._watch(new.layer if new is not None else None)
        if new is not None:
            self.schedule()

    def _watch(self, layer) -> None:
        """New data or contrast limits of the image change its embedding."""
        if self._watched is not None:
            self._watched.events.data.disconnect(self._on_image_data)
            self._watched.events.contrast_limits.disconnect(self._on_contrast)
        self._watched = layer
        if layer is not None:
            layer.events.data.connect(self._on_image_data)
            layer.events.contrast_limits.connect(self._on_contrast)

    def _on_image_data(self, event=None) -> None:
        session = self.sessions.current
        if session is None:
            return
        self.embeddings.forget_digests()
        self.embedded_key = None
        try:
            session.source.check()
        except ImageError as exc:  # e.g. replaced by an empty or 5D array
            notify.error(f"Cannot segment {session.layer.name!r} any more: {exc}")
            self.embeddings.cancel()
            self.embeddings.cancel_prefetch()
            self.sessions.drop(session, f"{session.layer.name!r} cannot be segmented any "
                                        "more: pick another image.")
            return
        if session.source.spatial_shape != session.shape:
            self.sessions.choose(session.layer)  # the shape changed: new labels and prompts
            return
        self.schedule()

    def _on_contrast(self, event=None) -> None:
        self._contrast_timer.start()

    def _contrast_settled(self) -> None:
        self.embedded_key = None  # the key holds the limits: the next decode re-embeds
        self.schedule()

    def close(self) -> None:
        self.closed = True
        self.decode_timer.stop()
        self._contrast_timer.stop()
        self.decoder.invalidate()
        self._watch(None)

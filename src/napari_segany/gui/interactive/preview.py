"""Prompts to preview in the Segment Anything widget: the prompts of the shown slice are
decoded (debounced, in a worker) into masks on the preview layer, with the slice's embedding
computed or taken from the cache first; a new slice or changed image data starts afresh.

A mixin of ``SegAnyWidget``: these methods use its ``source``, ``session``, ``prompts``,
``preview``, ``embeddings`` and ``decoder``, which ``SegAnyWidget.__init__`` creates.
"""
from __future__ import annotations

from napari.utils.notifications import show_error, show_warning

from ..engine.errors import ImageError, PromptError, SegAnyError
from ..engine.interactive import group_prompts, fit_prompts


class PromptPreview:
    """Decode the shown slice's prompts into the preview; follow slice and image changes."""

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
        self.predictor.set_embedding(entry)
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

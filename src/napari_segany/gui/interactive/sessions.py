"""Layer bookkeeping of the Segment Anything widget: which Image layer is segmented, the
prompt and preview layers it owns, the Labels layer commits go to, and the viewer's layer
events (inserted, removed, renamed) that change them.

A mixin of ``SegAnyWidget``: these methods read and set the widget's state (``source``,
``writer``, ``prompts``, ``preview``, the combo boxes), which ``SegAnyWidget.__init__`` creates.
"""
from __future__ import annotations

from napari.layers import Image, Labels
from napari.utils.notifications import show_error

from ..engine.errors import ImageError
from .image_slice import ImageSource
from .keybindings import bind_shortcuts
from .labels_io import NEW_LABELS, PREVIEW_NAME, ensure_labels, own_labels
from .prompt_layers import BOXES_NAME, POINTS_NAME
from .qt_helpers import select_quietly, set_items, signals_blocked

OWN_LAYERS = (POINTS_NAME, BOXES_NAME, PREVIEW_NAME)


class LayerBookkeeping:
    """Attach / detach the image, own the prompt and preview layers, choose the Labels layer."""

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
        set_items(self.image_combo, images)
        set_items(self.labels_combo, [NEW_LABELS] + labels)
        self._show_choices()

    def _show_choices(self) -> None:
        """Make the combo boxes name what is in use (after a rename or a refused pick)."""
        if self.source is not None:
            select_quietly(self.image_combo, self.source.layer.name)
            with signals_blocked(self.channel_check):
                self.channel_check.setChecked(self.source.channel_first)
            self.channels_edit.setText(",".join(str(c) for c in self.source.channels))
        if self.writer.layer is not None and self.writer.layer in self.viewer.layers:
            select_quietly(self.labels_combo, self.writer.layer.name)

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
            self._unwatch_image(self.source.layer)
        self.embeddings.cancel()
        self.source, self._shape = source, source.spatial_shape
        self.store_panel.attach(layer)
        self._attach_own_layers(source)
        self._attach_labels(fitting_only=True)
        self._watch_image(layer)
        self.viewer.layers.selection.active = self.prompts.points
        self._reset_objects(clear_prompts=False)

    def _detach_image(self) -> None:
        """The image layer is gone: stop the work on it. The model, its session and the
        committed labels stay; the objects of that image are dropped."""
        self._unwatch_image(self.source.layer)
        self.embeddings.cancel()
        self.embeddings.cancel_prefetch()
        self.store_panel.detach()
        self._forget_objects()
        if self.preview.alive():
            self.preview.reset()
        self.source, self.index, self._shape = None, None, None
        self.status_label.setText("The image was removed: pick another one.")

    def _watch_image(self, layer) -> None:
        """New data or contrast limits of the image change its embedding."""
        layer.events.data.connect(self._on_image_data)
        layer.events.contrast_limits.connect(self._on_contrast)

    def _unwatch_image(self, layer) -> None:
        layer.events.data.disconnect(self._on_image_data)
        layer.events.contrast_limits.disconnect(self._on_contrast)

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
            target = chosen or own_labels(self.viewer, self.source)
            layer = ensure_labels(self.viewer, self.source, target)
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
        select_quietly(self.labels_combo, layer.name)
        self.propagation.sync()
        if new:
            self._move_own_layers_up()

    def _move_own_layers_up(self) -> None:
        """Keep the prompts and the preview drawn on top of the labels."""
        if self.prompts.alive() and self.preview.alive():
            for own in (self.preview.layer, self.prompts.boxes, self.prompts.points):
                self.viewer.layers.move(self.viewer.layers.index(own), len(self.viewer.layers))

"""Which image the Segment Anything dock segments: one :class:`ImageSession` per image layer.

:class:`ImageSessions` follows the viewer's layers (inserted, removed, renamed) and the
dock's Data controls (image, channels, Labels target): it makes the session of an image the
first time the image is chosen, switches sessions when another one is chosen, keeps the
chosen image's layers directly above it, and says so with :attr:`ImageSessions.switched`.
"""
from __future__ import annotations

from napari.layers import Image, Labels
from qtpy.QtCore import QObject, Signal

from ...engine.errors import ImageError
from ..shared import notify
from ..shared.image_controls import channels_of
from ..shared.image_slice import ImageSource
from ..shared.labels_io import NEW_LABELS, ensure_labels, is_scratch_layer, own_labels
from ..shared.qt_helpers import select_quietly, set_items, signals_blocked, single_shot_timer
from .image_session import ImageSession
from .own_layers import LayerNames


class ImageSessions(QObject):
    """The sessions of the dock's images and the one in use (``current``).

    Signals: ``switched(old, new)`` (either may be None), ``prompts_changed(session)`` (its
    prompt layers were edited), ``layers_made(session)`` (its prompt layers were (re)made),
    ``own_layer_removed(session)``, ``labels_changed(session)``, ``status(text)``.
    """

    switched = Signal(object, object)
    prompts_changed = Signal(object)
    layers_made = Signal(object)
    own_layer_removed = Signal(object)
    labels_changed = Signal(object)
    status = Signal(str)

    def __init__(self, viewer, controls, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.ui = controls  # image_combo, channel_check, channels_edit, labels_combo
        self.sessions: list[ImageSession] = []
        self.current: ImageSession | None = None
        # After a removal, not during it: napari's layers.clear() removes until none is left.
        self._pick_timer = single_shot_timer(self, 0, self.choose_first_image)

    # ================================================================ choosing
    def session_of(self, layer) -> ImageSession | None:
        return next((s for s in self.sessions if s.layer == layer), None)  # == : proxies

    def choose(self, layer, channel_first: bool | None = None, channels=None) -> bool:
        """Segment ``layer`` from now on (its session, made if new); False, with one
        notification, when it cannot be segmented (the current image stays)."""
        try:
            source = self._source_for(layer, channel_first, channels)
        except (ImageError, ValueError) as exc:
            notify.error(f"Cannot segment this image: {exc}")
            self.show_choices()  # the controls keep naming the image in use
            return False
        session = self.session_of(layer)
        if session is not None and (session.source != source
                                    or session.shape != source.spatial_shape):
            self.drop(session)  # other channels or another shape: a new session
            session = None
        if session is None:
            session = self._new_session(source)
        self._switch_to(session)
        return True

    def choose_selected(self) -> None:
        name = self.ui.image_combo.currentText()
        if name and name in self.viewer.layers:
            self.choose(self.viewer.layers[name])

    def choose_first_image(self, preferred=None) -> None:
        """Without an image, pick one by itself: ``preferred`` (a new layer) or the first
        image that can be segmented; if none can, say why for the first."""
        if self.current is not None:
            return
        candidates = [preferred] if preferred is not None else []
        candidates += [layer for layer in self.viewer.layers if isinstance(layer, Image)]
        for layer in candidates:
            try:
                self._source_for(layer)
            except (ImageError, ValueError):
                continue
            self.choose(layer)
            return
        if candidates:
            self.choose(candidates[0])  # the notification says why not

    def _source_for(self, layer, channel_first=None, channels=None) -> ImageSource:
        """How ``layer`` is read (the channel controls unless given); ImageError if it cannot."""
        if not isinstance(layer, Image):
            raise ImageError(f"{layer.name!r} is a {type(layer).__name__} layer: pick an "
                             "Image layer to segment.")
        if channel_first is None:
            channel_first = self.ui.channel_check.isChecked()
        if channels is None:
            channels = channels_of(self.ui.channels_edit.text())
        source = ImageSource(layer, bool(channel_first), tuple(channels))
        source.check()
        return source

    def _new_session(self, source: ImageSource) -> ImageSession:
        plain = not any(s.names == LayerNames() for s in self.sessions)
        names = LayerNames.for_image(source.layer.name, plain)
        session = ImageSession(self.viewer, source, names, self.prompts_changed.emit)
        self.sessions.append(session)
        self.ensure_layers(session)
        self._pick_labels(session, self._labels_choice(session))
        return session

    def _switch_to(self, session: ImageSession) -> None:
        old, self.current = self.current, session
        self.ensure_layers(session)
        session.keep_layers_above_image()
        self.viewer.layers.selection.active = session.prompts.points
        self.show_choices()
        if old is not session:
            self.switched.emit(old, session)

    # ================================================================ its layers
    def ensure_layers(self, session: ImageSession) -> None:
        """Make (or re-make, after the user deleted them) the session's own layers."""
        if session.layers_alive():
            return
        taken = [layer for other in self.sessions if other is not session
                 for layer in other.own_layers() if layer is not None]
        session.make_layers(taken)
        session.keep_layers_above_image()
        self.layers_made.emit(session)

    def choose_labels(self, session: ImageSession | None = None) -> None:
        """The Labels choice of the controls: the session commits there (refused, with one
        notification, when its shape does not fit)."""
        session = session or self.current
        if session is not None:
            self._pick_labels(session, self._labels_choice(session, fitting_only=False))

    def set_labels(self, layer) -> None:
        select_quietly(self.ui.labels_combo, layer.name)
        self.choose_labels()

    def commit_target(self, session: ImageSession):
        """The session's Labels layer while it fits the image; a new (or adopted) one once the
        user deleted it.  ValueError when its data no longer has the image's shape."""
        layer = session.writer.layer
        if layer is None or layer not in self.viewer.layers:
            layer = own_labels(self.viewer, session.source)
        layer = ensure_labels(self.viewer, session.source, layer)
        self._use_labels(session, layer)
        return layer

    def _labels_choice(self, session: ImageSession, fitting_only: bool = True):
        """The Labels layer the controls name (None: a new one), kept for another image only
        when it fits that image's shape."""
        name = self.ui.labels_combo.currentText()
        chosen = self.viewer.layers[name] if name in self.viewer.layers else None
        if fitting_only and chosen is not None and chosen.data.shape != session.shape:
            chosen = None  # another image was picked: its own new Labels layer
        return chosen

    def _pick_labels(self, session: ImageSession, chosen) -> None:
        try:
            target = chosen or own_labels(self.viewer, session.source)
            layer = ensure_labels(self.viewer, session.source, target)
        except ValueError as exc:
            notify.error(str(exc))
            self.show_choices()  # the combo keeps naming the layer commits go to
            return
        self._use_labels(session, layer)

    def _use_labels(self, session: ImageSession, layer) -> None:
        new = layer != session.writer.layer
        session.writer.attach(layer)
        if session is self.current:
            select_quietly(self.ui.labels_combo, layer.name)
        if new:
            session.keep_layers_above_image()
            self.labels_changed.emit(session)

    # ================================================================ viewer events
    def connect_viewer(self) -> None:
        self.viewer.layers.events.inserted.connect(self._on_inserted)
        self.viewer.layers.events.removed.connect(self._on_removed)
        self.viewer.layers.events.connect(self._on_layer_event)

    def disconnect_viewer(self) -> None:
        self.viewer.layers.events.inserted.disconnect(self._on_inserted)
        self.viewer.layers.events.removed.disconnect(self._on_removed)
        self.viewer.layers.events.disconnect(self._on_layer_event)

    def refresh_choices(self) -> None:
        images = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        labels = [layer.name for layer in self.viewer.layers
                  if isinstance(layer, Labels) and not is_scratch_layer(layer)]
        set_items(self.ui.image_combo, images)
        set_items(self.ui.labels_combo, [NEW_LABELS] + labels)
        self.show_choices()

    def show_choices(self) -> None:
        """Make the controls name what is in use (after a switch, a rename, a refused pick)."""
        session = self.current
        if session is None:
            return
        select_quietly(self.ui.image_combo, session.layer.name)
        with signals_blocked(self.ui.channel_check):
            self.ui.channel_check.setChecked(session.source.channel_first)
        self.ui.channels_edit.setText(",".join(str(c) for c in session.source.channels))
        if session.writer.layer is not None and session.writer.layer in self.viewer.layers:
            select_quietly(self.ui.labels_combo, session.writer.layer.name)

    def _on_inserted(self, event) -> None:
        self.refresh_choices()
        if isinstance(event.value, Image):
            self.choose_first_image(preferred=event.value)

    def _on_layer_event(self, event) -> None:
        if event.type == "name":  # a layer was renamed: the choices list names
            self.refresh_choices()

    def _on_removed(self, event) -> None:
        removed = event.value
        for session in list(self.sessions):
            if removed == session.layer:
                self.drop(session)
            elif session.owns(removed):
                self.own_layer_removed.emit(session)
            elif session.writer.layer is not None and removed == session.writer.layer:
                session.writer.attach(None)  # the next commit creates (or adopts) one
        self.refresh_choices()
        if self.current is None:
            self._pick_timer.start()

    # ================================================================ endings
    def drop(self, session: ImageSession,
             why: str = "The image was removed: pick another one.") -> None:
        """Forget ``session`` (its image is gone or changed); its layers stay, the preview
        is emptied."""
        session.forget_objects()
        if session.preview.alive():
            session.preview.reset()
        session.close()
        self.sessions.remove(session)
        if session is self.current:
            self.current = None
            self.switched.emit(session, None)
            self.status.emit(why)

    def close(self) -> None:
        self._pick_timer.stop()
        self.disconnect_viewer()
        for session in self.sessions:
            session.close()

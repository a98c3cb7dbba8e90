"""The prompt layers: a Points layer for clicks and a Shapes layer whose rectangles are boxes.

They are ordinary napari layers (the user can move, delete, select points as usual); the
widget creates them for each image (names: :mod:`.own_layers`), or adopts ours by name.  A point's sign is the boolean
feature ``positive`` (green when True, red when False).  ``T`` flips the sign of the next
points; a middle click or Ctrl+click adds one negative point whatever the sign.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
from napari.layers import Points, Shapes

from ...engine.interactive import rc_to_xy, rectangle_to_box
from ..shared.image_slice import ImageSource
from .own_layers import BOXES_NAME, OWNER_KEY, POINTS_NAME, LayerNames, adopt

__all__ = ["BOXES_NAME", "POINTS_NAME", "PromptLayers"]
POSITIVE_COLOR = "#00ff00"
NEGATIVE_COLOR = "#ff2020"
MIDDLE_BUTTON = 3  # vispy's numbering: 1 left, 2 right, 3 middle


class PromptLayers:
    """Owns the two prompt layers and reads the prompts of one slice from them."""

    def __init__(self, viewer, on_change: Callable[[], None], names: LayerNames = LayerNames()):
        self.viewer = viewer
        self.on_change = on_change
        self.names = names
        self.points: Points | None = None
        self.boxes: Shapes | None = None
        self.positive = True  # sign of the next points
        self._negative_once = False  # set by a middle/Ctrl click, consumed by the next point
        self._muted = False

    # --- creating / adopting ------------------------------------------------------------
    def attach(self, source: ImageSource, taken=()) -> None:
        """Create the layers for ``source`` (or adopt ours of the same names and ndim;
        ``taken``: layers other images use)."""
        ndim = len(source.spatial_shape)
        self.points = (adopt(self.viewer, self.names.points, Points, ndim, taken)
                       or self._new_points(source))
        self.boxes = (adopt(self.viewer, self.names.boxes, Shapes, ndim, taken)
                      or self._new_boxes(source))
        if "positive" not in self.points.features:
            self.points.features = pd.DataFrame({"positive": np.ones(len(self.points.data), bool)})
        self._connect()
        self.set_positive(self.positive)
        self.recolor()
        self.points.mode = "add"
        self.viewer.layers.selection.active = self.points

    def _new_points(self, source: ImageSource) -> Points:
        ndim = len(source.spatial_shape)
        return self.viewer.add_points(
            np.zeros((0, ndim)), ndim=ndim, name=self.names.points, size=_point_size(source),
            metadata={OWNER_KEY: source.layer.name},
            scale=source.spatial_scale, translate=source.spatial_translate,
            features=pd.DataFrame({"positive": pd.Series([], dtype=bool)}),
            feature_defaults={"positive": True}, face_color=POSITIVE_COLOR,
            border_color="white", border_width=0.1, out_of_slice_display=False,
        )

    def _new_boxes(self, source: ImageSource) -> Shapes:
        return self.viewer.add_shapes(
            ndim=len(source.spatial_shape), name=self.names.boxes,
            metadata={OWNER_KEY: source.layer.name}, scale=source.spatial_scale,
            translate=source.spatial_translate, edge_color="#ffd000", face_color="transparent",
            edge_width=max(1.0, _point_size(source) / 3),
        )

    def _connect(self) -> None:
        for layer in (self.points, self.boxes):
            layer.events.data.disconnect(self._on_data)
            layer.events.data.connect(self._on_data)
        if self._remember_button not in self.points.mouse_drag_callbacks:
            self.points.mouse_drag_callbacks.insert(0, self._remember_button)

    def detach(self) -> None:
        """Stop listening to the layers (the widget is closed); the layers stay."""
        for layer in (self.points, self.boxes):
            if layer is not None:
                layer.events.data.disconnect(self._on_data)
        if self.points is not None and self._remember_button in self.points.mouse_drag_callbacks:
            self.points.mouse_drag_callbacks.remove(self._remember_button)

    def alive(self) -> bool:
        return (self.points is not None and self.points in self.viewer.layers
                and self.boxes is not None and self.boxes in self.viewer.layers)

    # --- signs and colours ----------------------------------------------------------------
    def set_positive(self, positive: bool) -> None:
        self.positive = bool(positive)
        if self.points is not None:
            self.points.feature_defaults = {"positive": self.positive}

    def toggle_sign(self) -> bool:
        self.set_positive(not self.positive)
        return self.positive

    def recolor(self) -> None:
        signs = self.points.features["positive"].to_numpy(bool)
        colors = np.where(signs[:, None], _rgba(POSITIVE_COLOR), _rgba(NEGATIVE_COLOR))
        # setting face_color redraws every point (3 ms of a click's GUI time): only when a
        # colour is wrong, e.g. the new point took the selected point's sign
        current = self.points.face_color
        if len(colors) and (current.shape != colors.shape or not np.allclose(current, colors)):
            self.points.face_color = colors

    def _remember_button(self, layer, event):
        if layer.mode == "add":
            # vispy's Key compares equal to its name ("Control"), as plain strings do
            self._negative_once = (event.button == MIDDLE_BUTTON
                                   or any(m == "Control" for m in event.modifiers))

    # --- events -------------------------------------------------------------------------
    def _on_data(self, event) -> None:
        action = str(getattr(event, "action", "changed"))
        if action.endswith("ing"):  # "adding", "changing", "removing": wait for the result
            return
        if event.source == self.points and action.endswith("added"):  # == : proxies
            self._sign_new_points(getattr(event, "data_indices", None))
            self.recolor()
        if not self._muted:
            self.on_change()

    def _sign_new_points(self, indices) -> None:
        """Give new points the widget's sign. (napari makes ``feature_defaults`` follow the
        selected point, so the defaults alone would copy the sign of the last point.)"""
        n = len(self.points.data)
        indices = [n - 1] if not indices else [i % n for i in indices]
        positive = self.positive and not self._negative_once
        self.points.features.loc[indices, "positive"] = positive
        self.points.feature_defaults = {"positive": self.positive}
        self._negative_once = False

    # --- scripted prompts ---------------------------------------------------------------
    def add_points(self, coords, positive: bool = True) -> None:
        """Add points given in the prompt layers' data coordinates ((..., row, col))."""
        coords = np.atleast_2d(np.asarray(coords, float))
        before = self.positive
        self.set_positive(positive)
        try:
            self.points.add(coords)
        finally:
            self.set_positive(before)
        self.recolor()

    def add_box(self, vertices) -> None:
        self.boxes.add_rectangles(np.asarray(vertices, float))

    # --- reading --------------------------------------------------------------------------
    def prompts_on(self, source: ImageSource, index: tuple[int, ...]):
        """(points_xy, labels, boxes_xyxy) of the slice ``index``, in image pixels."""
        points = _to_image_coords(self.points, source, self.points.data)
        on = _on_slice(points, index)
        signs = self.points.features["positive"].to_numpy(bool)
        labels = np.where(signs[on], 1, 0).astype(np.int64)
        boxes = []
        for vertices, kind in zip(self.boxes.data, self.boxes.shape_type):
            vertices = _to_image_coords(self.boxes, source, vertices)
            if kind == "rectangle" and _on_slice(vertices[:1], index).all():
                boxes.append(rectangle_to_box(vertices))
        return rc_to_xy(points[on]), labels, boxes

    def remove_last(self, source: ImageSource, index: tuple[int, ...]) -> bool:
        """Remove the most recent point (else box) of the slice; False when there is none."""
        for layer in (self.points, self.boxes):
            coords = layer.data if layer is self.points else [v[0] for v in layer.data]
            on = np.flatnonzero(_on_slice(_to_image_coords(layer, source, coords), index))
            if on.size:
                layer.selected_data = {int(on[-1])}
                layer.remove_selected()
                return True
        return False

    def count_on(self, source: ImageSource, index) -> int:
        points_xy, _, boxes = self.prompts_on(source, index)
        return len(points_xy) + len(boxes)

    def clear_slice(self, source: ImageSource, index: tuple[int, ...]) -> None:
        """Remove the prompts of one slice (after a commit or a discard), without re-decoding."""
        self._muted = True
        try:
            points = _to_image_coords(self.points, source, self.points.data)
            doomed = set(np.flatnonzero(_on_slice(points, index)).tolist())
            if doomed:
                self.points.selected_data = doomed
                self.points.remove_selected()
            doomed = {i for i, v in enumerate(self.boxes.data)
                      if _on_slice(_to_image_coords(self.boxes, source, v)[:1], index).all()}
            if doomed:
                self.boxes.selected_data = doomed
                self.boxes.remove_selected()
        finally:
            self._muted = False


def _on_slice(coords: np.ndarray, index: tuple[int, ...]) -> np.ndarray:
    """Which rows of (N, ndim) image coordinates lie on the slice ``index`` (leading axes)."""
    if len(index) == 0:
        return np.ones(len(coords), bool)
    return np.all(np.round(coords[:, : len(index)]) == np.asarray(index), axis=1)


def _to_image_coords(layer, source: ImageSource, coords) -> np.ndarray:
    """A prompt layer's data coordinates -> the image's spatial pixel coordinates."""
    coords = np.asarray(coords, float).reshape(-1, layer.ndim)
    same = (np.allclose(layer.scale, source.spatial_scale)
            and np.allclose(layer.translate, source.spatial_translate))
    if same or len(coords) == 0:
        return coords
    # another frame (an adopted layer): through world coordinates, as napari draws them
    out = np.array([source.layer.world_to_data(layer.data_to_world(c)) for c in coords])
    return out[:, 1:] if source.channel_first else out


def _point_size(source: ImageSource) -> float:
    return max(3.0, min(source.spatial_shape[-2:]) / 60)


def _rgba(color: str) -> np.ndarray:
    color = color.lstrip("#")
    return np.array([int(color[i:i + 2], 16) / 255 for i in (0, 2, 4)] + [1.0])

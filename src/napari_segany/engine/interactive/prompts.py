"""Prompts: validation, and the one place where napari (row, col) meets SAM (x, y).

napari stores a point as ``(..., row, col)`` in data coordinates; SAM takes ``(x, y)`` =
``(col, row)``.  A napari rectangle is four ``(row, col)`` vertices; SAM takes a box
``(x0, y0, x1, y1)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PromptError

#: Point labels SAM understands: 1 foreground, 0 background, -1 padding ("not a point").
VALID_LABELS = (-1, 0, 1)


def rc_to_xy(points_rc) -> np.ndarray:
    """(N, >=2) napari points (the last two columns are row, col) -> (N, 2) float x, y."""
    points_rc = np.asarray(points_rc, dtype=float)
    if points_rc.size == 0:
        return np.zeros((0, 2))
    return points_rc[:, [-1, -2]].copy()


def xy_to_rc(points_xy) -> np.ndarray:
    """(N, 2) x, y -> (N, 2) row, col."""
    return np.asarray(points_xy, dtype=float)[:, ::-1].copy()


def rectangle_to_box(vertices_rc) -> np.ndarray:
    """A napari rectangle (4 vertices, last two columns row, col) -> x0, y0, x1, y1."""
    v = np.asarray(vertices_rc, dtype=float)[:, -2:]
    return np.array([v[:, 1].min(), v[:, 0].min(), v[:, 1].max(), v[:, 0].max()])


def box_to_rectangle(box_xyxy) -> np.ndarray:
    """x0, y0, x1, y1 -> 4 napari (row, col) vertices, clockwise from the top-left."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    return np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]])


def check_points(point_coords, point_labels, image_size: tuple[int, int]):
    """Validate (N, 2) x, y points and (N,) labels against an image of (H, W) pixels."""
    if point_coords is None and point_labels is None:
        return None, None
    if point_coords is None or point_labels is None:
        raise PromptError("point_coords and point_labels go together: give both or neither.")
    coords = np.asarray(point_coords, dtype=float)
    labels = np.asarray(point_labels)
    if coords.ndim != 2 or coords.shape[-1] != 2:
        raise PromptError(f"point_coords must have shape (N, 2) as x, y pixels; got {coords.shape}.")
    if labels.shape != (coords.shape[0],):
        raise PromptError(f"point_labels must have shape ({coords.shape[0]},); got {labels.shape}.")
    if not np.isfinite(coords).all():
        raise PromptError("point_coords contain NaN or infinite values.")
    if not np.isin(labels, VALID_LABELS).all():
        raise PromptError(f"point_labels must be 1 (object), 0 (background) or -1; got {np.unique(labels)}.")
    _check_inside(coords, image_size, "point")
    return coords, labels.astype(np.int64)


def check_box(box, image_size: tuple[int, int]) -> np.ndarray | None:
    """Validate one x0, y0, x1, y1 box; corners may come in any order; it must overlap the image."""
    if box is None:
        return None
    box = np.asarray(box, dtype=float).reshape(-1)
    if box.shape != (4,):
        raise PromptError(f"box must be x0, y0, x1, y1 (4 numbers); got shape {np.shape(box)}.")
    if not np.isfinite(box).all():
        raise PromptError("box contains NaN or infinite values.")
    x0, x1 = sorted(box[[0, 2]])
    y0, y1 = sorted(box[[1, 3]])
    h, w = image_size
    if x1 < 0 or y1 < 0 or x0 > w or y0 > h:
        raise PromptError(f"The box {box.tolist()} lies outside the {h}x{w} image.")
    return np.array([x0, y0, x1, y1])


def _check_inside(coords: np.ndarray, image_size: tuple[int, int], what: str) -> None:
    h, w = image_size
    outside = (coords[:, 0] < 0) | (coords[:, 0] > w) | (coords[:, 1] < 0) | (coords[:, 1] > h)
    if outside.any():
        first = coords[np.argmax(outside)].tolist()
        raise PromptError(
            f"{int(outside.sum())} {what}(s) lie outside the {h}x{w} image, e.g. x, y = {first}. "
            "Coordinates are x (column), y (row) in pixels of the image given to set_image."
        )


@dataclass(frozen=True)
class FittedPrompts:
    """The prompts of one slice that lie on the image, and how many were left out."""

    points_xy: np.ndarray
    labels: np.ndarray
    boxes: list
    points_outside: int = 0
    boxes_outside: int = 0
    boxes_empty: int = 0

    @property
    def left_out(self) -> tuple[int, int, int]:
        return self.points_outside, self.boxes_outside, self.boxes_empty

    def describe_left_out(self) -> str:
        """A sentence for the user, empty when every prompt was kept."""
        parts = []
        if self.points_outside:
            parts.append(f"{self.points_outside} point(s) outside the image")
        if self.boxes_outside:
            parts.append(f"{self.boxes_outside} box(es) outside the image")
        if self.boxes_empty:
            parts.append(f"{self.boxes_empty} box(es) less than a pixel wide or tall")
        if not parts:
            return ""
        return (f"Ignored {' and '.join(parts)}: click on the image, and drag rectangles around "
                "objects. Ctrl+Z removes the last prompt.")


def fit_prompts(points_xy, labels, boxes, image_size: tuple[int, int]) -> FittedPrompts:
    """Keep the prompts that are on an image of (H, W) pixels, as a viewer draws it.

    A viewer draws pixel (row, col) over row +- 0.5, col +- 0.5, so a click anywhere on the
    image lies in [-0.5, W - 0.5] x [-0.5, H - 0.5]: such points are snapped into the pixel
    range (a click on the outer half of an edge pixel means that pixel), the others are left
    out. Boxes are clipped to the image; a box off the image, or less than a pixel wide or
    tall after clipping, encloses nothing and is left out. (``check_points`` and
    ``check_box`` reject such prompts; an interactive user should not lose the others.)
    """
    h, w = image_size
    points = np.asarray(points_xy, float).reshape(-1, 2)
    labels = np.asarray(labels).reshape(-1)
    on_image = ((points[:, 0] >= -0.5) & (points[:, 0] <= w - 0.5)
                & (points[:, 1] >= -0.5) & (points[:, 1] <= h - 0.5))
    kept_points = np.clip(points[on_image], 0, [w - 1, h - 1])
    kept_boxes, outside, empty = [], 0, 0
    for box in boxes:
        x0, y0, x1, y1 = np.asarray(box, float).reshape(4)
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        if x1 < -0.5 or y1 < -0.5 or x0 > w - 0.5 or y0 > h - 0.5:
            outside += 1
            continue
        clipped = np.clip([x0, y0, x1, y1], -0.5, [w - 0.5, h - 0.5, w - 0.5, h - 0.5])
        if clipped[2] - clipped[0] < 1 or clipped[3] - clipped[1] < 1:
            empty += 1
            continue
        kept_boxes.append(clipped)
    return FittedPrompts(kept_points, labels[on_image], kept_boxes,
                         int((~on_image).sum()), outside, empty)

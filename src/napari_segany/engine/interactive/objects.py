"""Prompts -> objects: :func:`group_prompts` turns the clicks and boxes of one 2D slice into
objects: every box is an object (with the points inside it), the other points make one
object, or one object per positive point when asked (negative points then apply to all).

Coordinates: x, y pixels of the 2D slice (SAM convention).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import PromptError


POSITIVE, NEGATIVE = 1, 0


@dataclass(frozen=True)
class ObjectPrompt:
    """The prompts of one object. ``key`` names the object across edits of its prompts."""

    key: tuple
    points_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    box: np.ndarray | None = None

    @property
    def n_prompts(self) -> int:
        return len(self.labels) + (self.box is not None)

    def signature(self) -> tuple:
        """Equal signatures decode to the same mask (rounded to 1/1000 pixel)."""
        points = tuple(
            (round(float(x), 3), round(float(y), 3), int(lab))
            for (x, y), lab in zip(self.points_xy, self.labels)
        )
        box = None if self.box is None else tuple(round(float(v), 3) for v in self.box)
        return points, box

    def extends(self, previous: "ObjectPrompt") -> bool:
        """True when this prompt set is ``previous`` plus more points (a refinement click)."""
        mine, box = self.signature()
        theirs, their_box = previous.signature()
        return box == their_box and len(mine) > len(theirs) and set(theirs) <= set(mine)


def group_prompts(points_xy=None, labels=None, boxes=(), split_points: bool = False
                  ) -> list[ObjectPrompt]:
    """Group one slice's points (x, y + label 1/0) and boxes (x0, y0, x1, y1) into objects.

    - every box is an object; a point inside boxes joins the smallest of them;
    - the other points form one object (if any is positive), or, with ``split_points``,
      every positive point is an object and the negative points apply to each.
    """
    points = np.zeros((0, 2)) if points_xy is None else np.asarray(points_xy, float).reshape(-1, 2)
    labels = np.zeros(0, np.int64) if labels is None else np.asarray(labels, np.int64).reshape(-1)
    if len(points) != len(labels):
        raise PromptError(f"{len(points)} points but {len(labels)} labels.")
    boxes = [_ordered_box(b) for b in boxes]
    owner = _box_owner(points, boxes)
    objects = []
    for i, box in enumerate(boxes):
        mine = owner == i
        key = ("box",) + tuple(round(float(v), 1) for v in box)
        objects.append(ObjectPrompt(key, points[mine], labels[mine], box))
    free = owner < 0
    points, labels = points[free], labels[free]
    positive = labels == POSITIVE
    if not positive.any():
        return objects  # negative clicks alone describe no object
    if not split_points:
        return objects + [ObjectPrompt(("points",), points, labels)]
    negatives = points[~positive], labels[~positive]
    for xy in points[positive]:
        key = ("point", round(float(xy[0]), 1), round(float(xy[1]), 1))
        objects.append(ObjectPrompt(
            key, np.vstack([xy[None], negatives[0]]),
            np.concatenate([[POSITIVE], negatives[1]]).astype(np.int64),
        ))
    return objects


def _ordered_box(box) -> np.ndarray:
    b = np.asarray(box, float).reshape(4)
    return np.array([min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])])


def _box_owner(points: np.ndarray, boxes: list[np.ndarray]) -> np.ndarray:
    """Index of the smallest box holding each point, -1 for none."""
    owner = np.full(len(points), -1)
    best_area = np.full(len(points), np.inf)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        inside = ((points[:, 0] >= x0) & (points[:, 0] <= x1)
                  & (points[:, 1] >= y0) & (points[:, 1] <= y1))
        area = (x1 - x0) * (y1 - y0)
        take = inside & (area < best_area)
        owner[take], best_area[take] = i, area
    return owner

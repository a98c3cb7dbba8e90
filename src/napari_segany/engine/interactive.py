"""GUI-free logic of interactive segmentation: prompts -> objects -> masks -> Labels.

* :func:`group_prompts` turns the clicks and boxes of one 2D slice into objects: every box is
  an object (with the points inside it), the other points make one object, or one object per
  positive point when asked (negative points then apply to all of them).
* :class:`InteractiveSession` decodes only the objects whose prompts changed, feeds an
  object's previous low-res logits back as ``mask_input`` when points were added to it, and
  upsamples only the candidate that is shown (best score unless the user cycles).
* :func:`commit_mask` computes the pixels a commit writes, within the mask's bounding box,
  never over other objects in preserve mode; :class:`MaxLabelTracker` hands out new ids
  without scanning the whole label image each time.

All coordinates here are x, y pixels of the 2D slice (SAM convention); masks and bounding
boxes are (row, col) arrays.  The napari side converts with ``engine.prompts``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .errors import PromptError

#: A bounding box (row0, row1, col0, col1), half-open, in pixels of the 2D slice.
BBox = tuple[int, int, int, int]

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


# --- masks ------------------------------------------------------------------------------------
def crop_to_full(crop: np.ndarray, bbox: BBox | None, shape: tuple[int, int]) -> np.ndarray:
    """A (H, W) bool mask from its crop and bbox (r0, r1, c0, c1); all False if bbox is None."""
    out = np.zeros(shape, bool)
    if bbox is not None:
        r0, r1, c0, c1 = bbox
        out[r0:r1, c0:c1] = crop
    return out


@dataclass(frozen=True)
class ObjectMask:
    """The shown mask of one object, cropped to its bounding box."""

    key: tuple
    bbox: BBox | None  # None: the mask is empty
    crop: np.ndarray  # bool (row1 - row0, col1 - col0)
    score: float
    candidate: int  # index of the shown candidate among n_candidates
    n_candidates: int

    @property
    def area(self) -> int:
        return int(self.crop.sum())

    def full(self, shape: tuple[int, int]) -> np.ndarray:
        """The mask at full size (for scripts; the GUI only ever writes the crop)."""
        return crop_to_full(self.crop, self.bbox, shape)


def mask_bbox(mask: np.ndarray) -> BBox | None:
    """Half-open bounding box of the True pixels of a 2D mask, None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def crop_to_bbox(mask: np.ndarray) -> tuple[BBox | None, np.ndarray]:
    bbox = mask_bbox(mask)
    if bbox is None:
        return None, np.zeros((0, 0), bool)
    r0, r1, c0, c1 = bbox
    return bbox, np.ascontiguousarray(mask[r0:r1, c0:c1])


def union_bbox(*boxes: BBox | None) -> BBox | None:
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), max(b[1] for b in boxes),
            min(b[2] for b in boxes), max(b[3] for b in boxes))


# --- the session ------------------------------------------------------------------------------
@dataclass
class _ObjectState:
    prompt: ObjectPrompt
    low_res: object  # torch (1, M, h, w) logits of every candidate
    scores: np.ndarray  # (M,)
    choice: int | None = None  # the user's candidate; None = best score
    mask: ObjectMask | None = None

    @property
    def shown(self) -> int:
        return int(np.argmax(self.scores)) if self.choice is None else self.choice % len(self.scores)


@dataclass(frozen=True)
class DecodeResult:
    """The objects after a decode (see :meth:`InteractiveSession.decode`)."""

    objects: dict
    changed: list


class InteractiveSession:
    """The objects being segmented on one embedded slice.

    ``multimask``: ``"auto"`` (three candidates for a single click or a lone box, where the
    prompt is ambiguous; one mask once more prompts disambiguate, as SAM recommends),
    True or False.
    ``refine_with_mask``: feed the logits the user saw back as ``mask_input`` when prompts are
    added to an object (SAM's iterative refinement); ignored by models without mask prompts.
    """

    def __init__(self, predictor, multimask: str | bool = "auto", refine_with_mask: bool = True):
        self.predictor = predictor
        self.multimask = multimask
        self.refine_with_mask = refine_with_mask
        self._objects: dict[tuple, _ObjectState] = {}
        self.active_key: tuple | None = None

    # -- prompts
    def set_prompts(self, prompts: Sequence[ObjectPrompt]) -> list[tuple]:
        """Make the objects follow ``prompts``; decode those that changed; return their keys."""
        return self.apply(self.decode(prompts))

    def decode(self, prompts: Sequence[ObjectPrompt]) -> DecodeResult:
        """Decode what changed, without changing the session (safe in a worker thread while
        the main thread reads the session); :meth:`apply` makes it current."""
        objects, changed = {}, []
        current = dict(self._objects)
        for prompt in prompts:
            old = current.get(prompt.key)
            if old is not None and old.prompt.signature() == prompt.signature():
                objects[prompt.key] = old
                continue
            objects[prompt.key] = self._decode(prompt, old)
            changed.append(prompt.key)
        return DecodeResult(objects, changed)

    def apply(self, result: DecodeResult) -> list[tuple]:
        self._objects = result.objects
        if result.changed:
            self.active_key = result.changed[-1]
        elif self.active_key not in self._objects:
            self.active_key = next(reversed(self._objects), None)
        return result.changed

    def clear(self) -> None:
        self._objects = {}
        self.active_key = None

    @property
    def masks(self) -> list[ObjectMask]:
        return [state.mask for state in self._objects.values()]

    def mask_of(self, key: tuple) -> ObjectMask | None:
        state = self._objects.get(key)
        return None if state is None else state.mask

    # -- candidates
    def cycle_candidate(self, step: int = 1, key: tuple | None = None) -> ObjectMask | None:
        """Show the next of the object's candidates (the active object by default)."""
        state = self._objects.get(self.active_key if key is None else key)
        if state is None or len(state.scores) < 2:
            return None if state is None else state.mask
        state.choice = (state.shown + step) % len(state.scores)
        state.mask = self._upsample(state)
        return state.mask

    # -- internals
    def _multimask_for(self, prompt: ObjectPrompt) -> bool:
        if self.multimask == "auto":
            return prompt.n_prompts == 1
        return bool(self.multimask)

    def _feeds_back(self, prompt: ObjectPrompt, previous: _ObjectState | None) -> bool:
        """Whether this decode refines the previous one with its logits as mask_input."""
        return (previous is not None and self.refine_with_mask
                and self.predictor.spec.supports_mask_input and prompt.extends(previous.prompt))

    def _decode(self, prompt: ObjectPrompt, previous: _ObjectState | None) -> _ObjectState:
        mask_input = None
        if self._feeds_back(prompt, previous):
            # Feed back the logits the user saw: SAM's iterative refinement.
            mask_input = previous.low_res[0, previous.shown]
        points = prompt.points_xy if len(prompt.labels) else None
        labels = prompt.labels if len(prompt.labels) else None
        low_res, iou = self.predictor.decode_lowres(
            points, labels, prompt.box, mask_input, self._multimask_for(prompt))
        state = _ObjectState(prompt, low_res, iou[0].float().cpu().numpy())
        state.mask = self._upsample(state)
        return state

    def _upsample(self, state: _ObjectState) -> ObjectMask:
        index = state.shown
        full = self.predictor.upsample(state.low_res[:, index:index + 1])[0, 0].cpu().numpy()
        bbox, crop = crop_to_bbox(full)
        return ObjectMask(state.prompt.key, bbox, crop, float(state.scores[index]), index,
                          len(state.scores))


# --- writing masks ----------------------------------------------------------------------------
def commit_mask(labels_view: np.ndarray, mask: np.ndarray, new_id: int, preserve: bool = True,
                offset: tuple[int, int] = (0, 0), write: bool = False
                ) -> tuple[np.ndarray, np.ndarray]:
    """The (rows, cols) of ``labels_view`` a commit of ``mask`` with ``new_id`` changes.

    ``mask`` is a bool array placed at ``offset`` (row, col) in ``labels_view`` (a crop, as in
    :class:`ObjectMask`, or a full-size mask at (0, 0)); only its bounding box is read.  With
    ``preserve`` only background (0) pixels are taken, so existing objects are never
    overwritten.  ``write=True`` also assigns them (scripts); the GUI passes the indices to
    the Labels layer's undo-aware ``data_setitem`` instead.
    """
    mask = np.asarray(mask, bool)
    bbox = mask_bbox(mask)
    if bbox is None:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    r0, r1, c0, c1 = bbox
    orow, ocol = offset
    region = labels_view[orow + r0: orow + r1, ocol + c0: ocol + c1]
    take = mask[r0:r1, c0:c1]
    if take.shape != region.shape:
        raise ValueError(f"The mask at {offset} does not fit in labels of shape {labels_view.shape}.")
    if preserve:
        take = take & (region == 0)
    rows, cols = np.nonzero(take)
    rows += orow + r0
    cols += ocol + c0
    if write:
        labels_view[rows, cols] = new_id
    return rows, cols


class MaxLabelTracker:
    """The largest label id in use, scanned once and then updated by what is written."""

    def __init__(self):
        self._max: int | None = None

    def next_id(self, data) -> int:
        if self._max is None:
            self._max = int(np.max(data)) if np.size(data) else 0
        return self._max + 1

    def observe(self, value) -> None:
        """Record ids that were written (by a commit, or by the user painting)."""
        if self._max is not None:
            self._max = max(self._max, int(np.max(value)))

    def invalidate(self) -> None:
        """The data was replaced: scan again next time."""
        self._max = None


def paint_preview(preview: np.ndarray, old: ObjectMask | None, new: ObjectMask | None,
                  value: int, origin: tuple[int, int] = (0, 0)) -> BBox | None:
    """Replace an object's previous mask by its new one in a 2D preview array, in place.

    ``preview`` may be a window of the slice starting at ``origin`` (row, col) that holds
    both bounding boxes.  Only the two bounding boxes are touched; returns their union in
    slice coordinates (the region to refresh).
    """
    orow, ocol = origin
    if old is not None and old.bbox is not None:
        r0, r1, c0, c1 = old.bbox
        region = preview[r0 - orow:r1 - orow, c0 - ocol:c1 - ocol]
        region[region == value] = 0
    if new is not None and new.bbox is not None:
        r0, r1, c0, c1 = new.bbox
        preview[r0 - orow:r1 - orow, c0 - ocol:c1 - ocol][new.crop] = value
    return union_bbox(old.bbox if old else None, new.bbox if new else None)

"""What a propagation job returns: a label stack of the frames it visited."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class VideoMasks:
    """The frames a propagation visited, sorted.

    frame_indices: (n,) frame numbers; obj_ids: the objects (= label values); labels:
    (n, H, W) unsigned ints (the smallest dtype holding the largest id), each pixel the id
    of the object with the highest positive logit there, 0 elsewhere (napari row/col
    order, ready for a Labels layer).  Overlaps are resolved by that rule; the raw logits
    are what ``VideoPredictor.propagate_in_video`` yields.
    """

    frame_indices: np.ndarray
    obj_ids: list[int]
    labels: np.ndarray

    def masks(self) -> np.ndarray:
        """(n, n_obj, H, W) bool, one mask per object in ``obj_ids`` order."""
        ids = np.asarray(self.obj_ids, dtype=self.labels.dtype)
        return self.labels[:, None] == ids[None, :, None, None]


class MaskCollector:
    """Accumulates per-frame logits into a :class:`VideoMasks` (a frame seen twice, e.g.
    the start frame of a two-way propagation, keeps its last result)."""

    def __init__(self, obj_ids: list[int]) -> None:
        self.obj_ids = list(obj_ids)
        self.dtype = np.min_scalar_type(max(self.obj_ids, default=1))
        self._labels: dict[int, np.ndarray] = {}

    def add(self, frame_idx: int, logits: np.ndarray) -> None:
        """logits (n_obj, 1, H, W) float -> the frame's labels."""
        self._labels[frame_idx] = frame_labels(logits, self.obj_ids, self.dtype)

    def result(self, height: int, width: int) -> VideoMasks:
        frames = np.array(sorted(self._labels), dtype=np.int64)
        labels = np.zeros((len(frames), height, width), self.dtype)
        for i, t in enumerate(frames):
            labels[i] = self._labels[int(t)]
        return VideoMasks(frames, self.obj_ids, labels)


def frame_labels(logits: np.ndarray, obj_ids, dtype=None) -> np.ndarray:
    """One frame's logits (n_obj, 1, H, W) -> (H, W) labels: each pixel the id of the object
    with the highest positive logit there, 0 where none is positive (the rule of every
    label result of a video propagation).  ``dtype``: default the smallest for the ids."""
    dtype = np.min_scalar_type(max(obj_ids, default=1)) if dtype is None else dtype
    logits = logits[:, 0]
    ids = np.asarray(obj_ids, dtype=dtype)
    best = np.argmax(logits, axis=0)
    present = np.take_along_axis(logits, best[None], axis=0)[0] > 0
    return np.where(present, ids[best], 0).astype(dtype)

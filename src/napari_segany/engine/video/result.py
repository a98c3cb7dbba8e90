"""What a propagation job returns: binary masks per frame and object, and a label stack."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class VideoMasks:
    """Masks of the frames a propagation visited, sorted by frame.

    frame_indices: (n,) frame numbers; obj_ids: object ids (= label values), in the order
    of the ``masks`` axis 1; masks: (n, n_obj, H, W) bool (logits > 0); labels: (n, H, W)
    uint32, each pixel the id of the object with the highest positive logit, 0 elsewhere
    (napari row/col order, ready for a Labels layer).
    """

    frame_indices: np.ndarray
    obj_ids: list[int]
    masks: np.ndarray
    labels: np.ndarray


class MaskCollector:
    """Accumulates per-frame logits into a :class:`VideoMasks` (a frame seen twice, e.g.
    the start frame of a two-way propagation, keeps its last result)."""

    def __init__(self, obj_ids: list[int]) -> None:
        self.obj_ids = list(obj_ids)
        self._masks: dict[int, np.ndarray] = {}
        self._labels: dict[int, np.ndarray] = {}

    def add(self, frame_idx: int, logits: np.ndarray) -> None:
        """logits (n_obj, 1, H, W) float -> masks and labels of that frame."""
        logits = logits[:, 0]
        ids = np.asarray(self.obj_ids, dtype=np.uint32)
        best = np.argmax(logits, axis=0)
        present = np.take_along_axis(logits, best[None], axis=0)[0] > 0
        self._masks[frame_idx] = logits > 0
        self._labels[frame_idx] = np.where(present, ids[best], 0).astype(np.uint32)

    def result(self, height: int, width: int) -> VideoMasks:
        frames = np.array(sorted(self._masks), dtype=np.int64)
        n_obj = len(self.obj_ids)
        masks = np.zeros((len(frames), n_obj, height, width), bool)
        labels = np.zeros((len(frames), height, width), np.uint32)
        for i, t in enumerate(frames):
            masks[i], labels[i] = self._masks[int(t)], self._labels[int(t)]
        return VideoMasks(frames, self.obj_ids, masks, labels)

"""Image features of recently used frames (a small LRU; the rest is recomputed).

One frame's features take about 16 MB (stride-16 map and its position encoding, the two
high-resolution maps) for a 1024 x 1024 input, so only ``capacity`` frames are kept: the
frame being tracked, plus the frames the user is clicking on.  The official predictor keeps
one.
"""
from __future__ import annotations

from collections import OrderedDict

import torch

from ...models.sam2.sam2 import FrameFeatures, Sam2
from .frames import FrameSource


class FeatureCache:
    """frame index -> :class:`FrameFeatures` of ``model`` for the frames of ``source``."""

    def __init__(self, model: Sam2, source: FrameSource, capacity: int = 2) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.model = model
        self.source = source
        self.capacity = capacity
        self._items: OrderedDict[int, FrameFeatures] = OrderedDict()
        self.computed = 0  # encoder runs so far (for tests and benchmarks)

    def __contains__(self, frame_idx: int) -> bool:
        return frame_idx in self._items

    def get(self, frame_idx: int) -> FrameFeatures:
        """Features of ``frame_idx`` (computed with the image encoder on a miss)."""
        if frame_idx in self._items:
            self._items.move_to_end(frame_idx)
            return self._items[frame_idx]
        device = next(self.model.parameters()).device
        x = self.source.model_input(frame_idx, device)
        with torch.inference_mode():
            feats = self.model.encode_frame(x)
        self.computed += 1
        self._items[frame_idx] = feats
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return feats

    def clear(self) -> None:
        self._items.clear()

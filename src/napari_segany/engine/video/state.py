"""What a video session holds: the frame source, the feature cache and the memory bank."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .features import FeatureCache
from .frames import FrameSource
from .memory_bank import MemoryBank


@dataclass
class VideoState:
    """The state ``VideoPredictor.init_state`` returns (the official ``inference_state``).

    ``maskmem_pos`` is the position encoding of the spatial memories (the same for every
    frame, computed once)."""

    source: FrameSource
    features: FeatureCache
    bank: MemoryBank
    maskmem_pos: torch.Tensor | None = None

    @property
    def num_frames(self) -> int:
        return self.source.num_frames

    @property
    def video_height(self) -> int:
        return self.source.height

    @property
    def video_width(self) -> int:
        return self.source.width

    @property
    def obj_ids(self) -> list[int]:
        """Object ids in the order they were first prompted (rows of every result)."""
        return self.bank.obj_ids

    def close(self) -> None:
        """Free the cached features and the memory bank (and its spilled files)."""
        self.features.clear()
        self.bank.clear()

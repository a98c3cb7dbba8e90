"""What a video session holds: the frame source, the feature cache and the memory bank."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ...models.sam2.tracking import memory_pos_tokens
from .features import FeatureCache
from .frames import FrameSource
from .memory_bank import MemoryBank


@dataclass
class VideoState:
    """The state ``VideoPredictor.init_state`` returns (the official ``inference_state``).

    ``maskmem_pos`` is the position encoding of the spatial memories (the same for every
    frame, computed once); :meth:`memory_pos` its tokens per memory slot."""

    source: FrameSource
    features: FeatureCache
    bank: MemoryBank
    maskmem_pos: torch.Tensor | None = None
    _memory_pos: dict = field(default_factory=dict, repr=False)

    def memory_pos(self, model, t_pos: int) -> torch.Tensor:
        """(1, h*w, 64) position tokens of a memory at ``t_pos`` (made once per session)."""
        if t_pos not in self._memory_pos:
            with torch.inference_mode():
                self._memory_pos[t_pos] = memory_pos_tokens(model, self.maskmem_pos, t_pos)
        return self._memory_pos[t_pos]

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

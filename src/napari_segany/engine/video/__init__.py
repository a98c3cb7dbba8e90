"""SAM 2 memory-based propagation through time series and z-stacks: ``VideoPredictor``."""
from __future__ import annotations

from .predictor import VideoPredictor
from .result import VideoMasks, frame_labels
from .state import VideoState

__all__ = ["VideoMasks", "VideoPredictor", "VideoState", "frame_labels"]

"""When and how an image is tiled: the one rule of the widgets, the command line and the API.

An image is tiled when its longest side exceeds the threshold (default: twice the model
input, at least 2048 px); tiles are the model input's size (so they are embedded at full
resolution) with a halo of tile / 8.  :class:`TilingSettings` holds the user's choices
(None = automatic) and resolves them for a model.
"""
from __future__ import annotations

from dataclasses import dataclass

from .grid import TileGrid


#: Images whose longest side exceeds this many times the model input (and MIN_THRESHOLD)
#: are tiled by default (widget and ``napari-segany embed``).
DEFAULT_THRESHOLD_FACTOR = 2
MIN_THRESHOLD = 2048


def default_halo(tile: int) -> int:
    """The default halo: an eighth of the tile (128 px for SAM's 1024)."""
    return max(0, int(tile) // 8)


def default_threshold(input_size: int) -> int:
    """Tile above twice the model input, and never below 2048 px (small test models)."""
    return max(DEFAULT_THRESHOLD_FACTOR * int(input_size), MIN_THRESHOLD)


def needs_tiling(shape, input_size: int, threshold: int | None = None) -> bool:
    """True when a (H, W) image is larger than ``threshold`` px on its longest side
    (default: :func:`default_threshold`, 2048 for SAM)."""
    limit = default_threshold(input_size) if threshold is None else threshold
    return max(int(shape[0]), int(shape[1])) > limit


def model_input_size(model) -> int:
    """The side of a loaded model's input (1024 when it has no registry spec)."""
    return int(getattr(getattr(model, "spec", None), "input_size", 1024))


@dataclass(frozen=True)
class TilingSettings:
    """When and how everything mode tiles an image (the rule of the interactive widget and
    ``napari-segany embed``): tiled when the longest side exceeds ``threshold`` (None: twice
    the model input, at least 2048 px); ``tile`` None is the model input, ``halo`` None is
    tile / 8.  ``enabled`` False runs every image whole (downscaled to the model input)."""

    tile: int | None = None
    halo: int | None = None
    threshold: int | None = None
    enabled: bool = True

    def plan(self, shape, input_size: int) -> TileGrid | None:
        """The tiles of a (H, W[, C]) image, or None when it runs whole."""
        limit = self.threshold or default_threshold(input_size)
        if not self.enabled or not needs_tiling(shape[:2], input_size, limit):
            return None
        return self.grid(shape[:2], input_size)

    def grid(self, shape, input_size: int) -> TileGrid:
        """The tile grid of a (H, W) image with these settings (ValueError: no core left)."""
        size = int(self.tile or input_size)
        return TileGrid(tuple(shape), size, default_halo(size) if self.halo is None else self.halo)

    def check(self, input_size: int) -> None:
        """Raise ValueError when tile and halo leave no core (before any work)."""
        size = int(self.tile or input_size)
        self.grid((size, size), input_size)


def describe_tiles(grid: TileGrid) -> str:
    """E.g. "tiled: 16 tiles of 1024 px, halo 128"."""
    return f"tiled: {len(grid)} tiles of {grid.tile} px, halo {grid.halo}"

"""When and how an image is tiled: the one rule of the widgets, the command line and the API.

An image is tiled when its longest side exceeds the threshold (default: twice the model
input, and never below 2048 px); tiles are the model input's size, so that they are
embedded at full resolution, with a halo of tile / 8 (128 px for SAM's 1024).
:class:`TilingSettings` holds a user's choices (None = automatic) and resolves them for a
model: :meth:`TilingSettings.plan` is what every entry point asks.
"""
from __future__ import annotations

from dataclasses import dataclass

from .grid import TileGrid

#: Images whose longest side exceeds this many times the model input (and MIN_THRESHOLD)
#: are tiled by default.
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
    """The side of the image a loaded model's encoder sees at full resolution (its spec's
    ``encoder_size``; 1024 when it has no registry spec): the default tile."""
    spec = getattr(model, "spec", None)
    return int(getattr(spec, "encoder_size", None) or getattr(spec, "input_size", 1024))


@dataclass(frozen=True)
class TilingSettings:
    """When and how an image is tiled: when its longest side exceeds ``threshold`` (None:
    twice the model input, at least 2048 px), in tiles of ``tile`` px (None: the model
    input) with ``halo`` px of context (None: tile / 8).  ``enabled`` False never tiles
    (every image runs whole, downscaled to the model input).  0 counts as None for tile and
    threshold (what a "0 = auto" field gives); a negative value is refused."""

    tile: int | None = None
    halo: int | None = None
    threshold: int | None = None
    enabled: bool = True

    def __post_init__(self):
        for name in ("tile", "halo", "threshold"):
            value = getattr(self, name)
            if value is not None and int(value) < 0:
                raise ValueError(f"{name} must be >= 0 (or automatic), not {value}.")

    def resolve(self, input_size: int) -> tuple[int, int, int]:
        """(threshold, tile, halo) in pixels for a model of ``input_size``, automatic values
        resolved."""
        tile = int(self.tile or input_size)
        halo = default_halo(tile) if self.halo is None else int(self.halo)
        return int(self.threshold or default_threshold(input_size)), tile, halo

    def applies(self, shape, input_size: int) -> bool:
        """True when a (H, W[, C]) image is tiled (enabled, and longer than the threshold)."""
        threshold, _, _ = self.resolve(input_size)
        return self.enabled and needs_tiling(shape[:2], input_size, threshold)

    def plan(self, shape, input_size: int) -> TileGrid | None:
        """The tiles of a (H, W[, C]) image, or None when it runs whole."""
        return self.grid(shape[:2], input_size) if self.applies(shape, input_size) else None

    def grid(self, shape, input_size: int) -> TileGrid:
        """The tile grid of a (H, W) image with these settings (ValueError: no core left)."""
        _, tile, halo = self.resolve(input_size)
        return TileGrid(tuple(shape[:2]), tile, halo)

    def check(self, input_size: int) -> None:
        """Raise ValueError when tile and halo leave no core (before any work)."""
        _, tile, _ = self.resolve(input_size)
        self.grid((tile, tile), input_size)


def describe_tiles(grid: TileGrid) -> str:
    """E.g. "tiled: 16 tiles of 1024 px, halo 128"."""
    return f"tiled: {len(grid)} tiles of {grid.tile} px, halo {grid.halo}"

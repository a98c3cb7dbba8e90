"""Large images, tile by tile: the grid, the one rule for when to tile, tiled prompts.

* :mod:`.grid`: :class:`TileGrid`, overlapping windows with a halo and the cores that
  partition the image;
* :mod:`.settings`: :class:`TilingSettings`, when and how an image is tiled;
* :mod:`.predictor`: :class:`TiledPredictor`, prompts decoded in the tiles they touch and
  stitched; :mod:`.session`: the interactive session on it.
"""
from __future__ import annotations

from .grid import TileGrid
from .predictor import TiledPredictor
from .session import TiledSession
from .settings import TilingSettings, describe_tiles, model_input_size

__all__ = ["TileGrid", "TiledPredictor", "TiledSession", "TilingSettings", "describe_tiles",
           "model_input_size"]

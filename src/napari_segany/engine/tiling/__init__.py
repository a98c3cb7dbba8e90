"""Large images, tile by tile: the grid, the one rule for when to tile, tiled prompts.

* :mod:`.grid`: :class:`TileGrid`, overlapping windows with a halo and the cores that
  partition the image;
* :mod:`.settings`: :class:`TilingSettings`, when and how an image is tiled (the rule of
  the widgets, the command line and the API);
* :mod:`.predictor`: :class:`TiledPredictor`, prompts decoded in the tiles they touch and
  stitched (a promptable predictor: the interactive session drives it as any other);
* :mod:`.predictors`: :func:`predictor_for`, which predictor a model and an image get.
"""
from __future__ import annotations

from .grid import TileGrid
from .predictor import TiledPredictor
from .predictors import embedding_items, predictor_for, tiles_for
from .settings import TilingSettings, describe_tiles, model_input_size

__all__ = ["TileGrid", "embedding_items", "TiledPredictor", "TilingSettings", "describe_tiles", "model_input_size",
           "predictor_for", "tiles_for"]

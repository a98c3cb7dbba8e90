"""Large slices in the Segment Anything dock: segmented tile by tile.

A slice whose longest side exceeds the tiling threshold (the engine's rule,
:class:`~...engine.tiling.TilingSettings`, shown in the store panel) gets a
:class:`~...engine.tiling.TiledPredictor`: a tile is embedded when a prompt first reaches it
(in the decoder's worker), or all at once with *Compute embedding*.  Everything else (prompts,
preview, candidates, commits) is unchanged: an InteractiveSession drives the tiled predictor
as it drives the plain one.  FastSAM letterboxes any size itself and is never tiled.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...engine.interactive import InteractiveSession
from ...engine.tiling import TiledPredictor, TilingSettings, predictor_for, tiles_for
from ..shared.image_slice import ImageSource


@dataclass
class TiledSlice:
    """One large slice of an image: its tiled predictor, the session driving it, and what it
    was set up for (slice key, tiling settings, model)."""

    predictor: TiledPredictor
    session: InteractiveSession
    made_for: tuple

    def describe(self) -> str:
        grid = self.predictor.grid
        return (f"Large slice: {grid.ny} x {grid.nx} tiles of {grid.tile} px; a tile is "
                "embedded when a prompt first reaches it (or all at once: Compute embedding).")


def tiled_slice(model, source: ImageSource, index, key, settings: TilingSettings, cache,
                refine: bool, current: TiledSlice | None) -> TiledSlice | None:
    """The TiledSlice for slice ``index`` (``key``: its embedding key): ``current`` when it
    still fits, a new one when the slice, the settings or the model changed, None when the
    slice is not tiled."""
    shape = source.spatial_shape[-2:]
    if tiles_for(model, shape, settings) is None:
        return None
    made_for = (key, settings, id(model))
    if current is not None and current.made_for == made_for:
        return current
    predictor = predictor_for(model, shape, settings, cache=cache)
    raw = source.read(index)
    if source.channel_first:  # per-channel percentiles: the tiles get the slice's mapping
        predictor.set_image(source.to_rgb(raw), None, digest=key.slice_digest,
                            normalisation=key.normalisation)
    else:
        predictor.set_image(raw, source.layer.contrast_limits, digest=key.slice_digest,
                            normalisation=key.normalisation)
    return TiledSlice(predictor, InteractiveSession(predictor, refine_with_mask=refine), made_for)

"""Which promptable predictor a model and an image get: the one rule of the widgets, the
command line and the API.

* FastSAM (an instance model): :class:`~..interactive.FastSAMPredictor`, prompts select
  among its masks; it letterboxes any image size itself, so it is never tiled;
* a promptable model on an image the tiling rule tiles (:class:`~.settings.TilingSettings`):
  :class:`~.predictor.TiledPredictor`, tile embeddings in ``cache`` / ``store``;
* any other promptable model: :class:`~..interactive.Predictor`.
"""
from __future__ import annotations

from ...models.registry import INSTANCE, PROMPTABLE
from ..errors import CheckpointError
from ..interactive import FastSAMPredictor, Predictor, PromptablePredictor
from .grid import TileGrid
from .predictor import TiledPredictor
from .settings import TilingSettings, model_input_size


def tiles_for(model, image_shape, tiling: TilingSettings | None = None) -> TileGrid | None:
    """The tiles an image of ``image_shape`` (H, W[, C]) is segmented in with ``model``, or
    None when it is segmented whole (small images, FastSAM)."""
    if _task(model) != PROMPTABLE:
        return None
    return (tiling or TilingSettings()).plan(image_shape, model_input_size(model))


def predictor_for(model, image_shape=None, tiling: TilingSettings | None = None, *,
                  cache=None, store=None) -> PromptablePredictor:
    """The promptable predictor for ``model`` (a loaded model) and, when ``image_shape`` is
    given, an image of that shape (see the module docstring).  ``cache`` / ``store`` hold
    the tile embeddings of a tiled image."""
    task = _task(model)
    if task == INSTANCE:
        return FastSAMPredictor(model)
    if task != PROMPTABLE:
        raise CheckpointError(f"{model.spec.name} takes no prompts (a {task} model): choose a "
                              "promptable model or FastSAM.")
    grid = tiles_for(model, image_shape, tiling) if image_shape is not None else None
    if grid is not None:
        return TiledPredictor(model, grid.tile, grid.halo, cache=cache, store=store)
    return Predictor(model)


def embedding_items(model, plane, contrast_limits, tiling: TilingSettings | None = None,
                    digest: str | None = None) -> list[tuple]:
    """What embedding a plane for ``model`` computes: ``(EmbeddingKey, read_rgb)`` pairs, one
    for a whole plane, one per tile of a plane the tiling rule tiles; ``read_rgb()`` gives
    the (h, w, 3) uint8 the encoder takes, read only when called.  ``plane``: (H, W[, C])."""
    from functools import partial

    from ..embeddings import EmbeddingKey, model_identity, slice_digest
    from ..images import to_uint8_rgb

    digest = digest or slice_digest(plane)
    chosen = predictor_for(model, plane.shape, tiling)  # the rule of every entry point
    if isinstance(chosen, TiledPredictor):  # its grid, keys and windows
        chosen.set_image(plane, contrast_limits, digest=digest)
        return [(chosen.tile_key(*rc), partial(chosen.tile_rgb, *rc)) for rc in chosen.grid.tiles()]
    key = EmbeddingKey(digest, model_identity(model), contrast_limits, None)
    return [(key, partial(to_uint8_rgb, plane, contrast_limits))]


def _task(model) -> str:
    spec = getattr(model, "spec", None)
    if spec is None:
        raise ValueError("A predictor needs a model from napari_segany.load_model(...).")
    return spec.task

"""Everything mode on large images: run the method tile by tile, merge objects across tiles.

Each tile window is an ordinary image for the chosen method (grid, object_aware, fastsam; the
grid and object-aware methods reuse the tile embeddings of the cache/store).  Masks are
moved to image coordinates and merged by this rule:

1. a mask is **cut** when its box comes within ``edge_tolerance`` pixels of an edge of its
   window that is not an image edge (the object may go on beyond what the tile saw);
2. masks are visited complete-first, then by predicted IoU;
3. a mask from another tile is the **same object** as an already kept mask when their boxes
   meet and their mask IoU *within the pixels both tiles saw* (the intersection of the
   windows) exceeds ``merge_iou``.  An object seen whole by one tile and partly by another
   is then kept once, from the tile that saw it whole; two cut pieces of an object larger
   than the overlap are joined (union) into one mask;
4. masks of the same tile are never merged here (the method's own NMS did that).

Memory: masks stay compact (bounding box + bit-packed crop); only unions of cut pieces
allocate their own box.  Objects larger than a window are returned as the union of their
pieces, which is as good as the pieces the tiles saw.
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from ...models.registry import PROMPTABLE
from ..images import auto_contrast, to_uint8_rgb
from ..progress import Job, Progress, nested, run
from ..tiling import TiledPredictor, TilingSettings, model_input_size
from .methods import METHOD_TASK, check_method
from .result import EverythingResult
from .tile_merge import DEFAULT_MERGE_IOU, _Piece, merge_pieces

DEFAULT_EDGE_TOLERANCE = 16


def segment_everything_tiled(image, model, method: str = "grid", callback=None, **kwargs
                             ) -> EverythingResult:
    """:func:`iter_segment_everything_tiled` run to its end (``callback`` as in
    ``segment_everything``: sees each Progress, returns False to cancel)."""
    return run(iter_segment_everything_tiled(image, model, method, **kwargs), callback)


def iter_segment_everything_tiled(
        image, model, method: str = "grid", detector=None, contrast_limits=None,
        tile: int | None = None, halo: int | None = None, cache=None, store=None,
        merge_iou: float = DEFAULT_MERGE_IOU, edge_tolerance: int = DEFAULT_EDGE_TOLERANCE,
        tile_runner: Callable | None = None, digest: str | None = None, normalisation=None,
        cancel=None, **params) -> Job[EverythingResult]:
    """Generator: every object of a large 2D image (H, W[, C]), tile by tile; yields Progress,
    returns an :class:`EverythingResult` in image coordinates.

    ``tile`` defaults to the model input (1024), ``halo`` to tile / 8; ``cache``/``store``
    hold tile embeddings (see :class:`~..tiling.TiledPredictor`), under keys naming the image
    by ``digest`` / ``normalisation`` when given (see ``TiledPredictor.set_image``);
    ``params`` go to the method.
    ``tile_runner(rgb, embedding) -> Job[EverythingResult]`` replaces the method (tests).
    ``cancel`` (an Event) stops it between two steps of a decoder batch (raises Cancelled).
    """
    from . import as_model, iter_segment_everything

    check_method(method)
    model = as_model(model)
    tiled = None
    if METHOD_TASK[method] == PROMPTABLE and tile_runner is None:
        tiled = TiledPredictor(model, tile, halo, cache=cache, store=store)
        tiled.set_image(image, contrast_limits, digest=digest, normalisation=normalisation)
        grid, contrast = tiled.grid, tiled.contrast
    else:  # FastSAM letterboxes each window itself: no embeddings to keep
        grid = TilingSettings(tile, halo).grid(image.shape[:2], model_input_size(model))
        contrast = auto_contrast(image) if contrast_limits is None else contrast_limits
    if tile_runner is None:
        def tile_runner(rgb, embedding):
            return iter_segment_everything(rgb, model, method, detector, None, embedding,
                                           cancel=cancel, **params)

    pieces, n_prompts = [], 0
    for k, (row, col) in enumerate(grid.tiles()):
        y0, y1, x0, x1 = window = grid.window(row, col)
        if tiled is not None:
            rgb = tiled.tile_rgb(row, col)
            embedding = tiled.tile_embedding(row, col)
        else:
            rgb, embedding = to_uint8_rgb(np.asarray(image[y0:y1, x0:x1]), contrast), None
        prefix = f"tile {k + 1}/{len(grid)}: "
        result = yield from nested(tile_runner(rgb, embedding), k, len(grid), prefix)
        n_prompts += result.n_prompts
        pieces += [_Piece.of(rec, (row, col), window, grid.shape, edge_tolerance)
                   for rec in result.records]
        del result, rgb, embedding
        release_freed_memory()
    yield Progress(len(grid), len(grid), f"merging {len(pieces)} masks across tiles")
    records = [p.record() for p in merge_pieces(pieces, merge_iou)]
    return EverythingResult(records, grid.shape, method, n_prompts)


def release_freed_memory() -> None:
    """Give the heap memory freed by a tile's decode back to the OS (glibc ``malloc_trim``;
    a no-op elsewhere).  The decoder's buffers are freed in its worker threads' arenas, which
    glibc keeps: over 20 tiles of an 8k image in the widget's worker the peak was ~240 MB
    higher without it.  A trim costs milliseconds; a tile's decode, seconds."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    """libc's ``malloc_trim``, or None where there is none (not glibc)."""
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None

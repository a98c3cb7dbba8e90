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
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .everything.masks import CompactMask
from .everything.result import EverythingResult, Record
from .everything.stack import nested
from .intensity import to_uint8_rgb
from .progress import Job, Progress, run
from .tiling import Box, TileGrid, default_halo, default_threshold, intersect, needs_tiling

DEFAULT_MERGE_IOU = 0.5
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
        tile_runner: Callable | None = None, **params) -> Job[EverythingResult]:
    """Generator: every object of a large 2D image (H, W[, C]), tile by tile; yields Progress,
    returns an :class:`EverythingResult` in image coordinates.

    ``tile`` defaults to the model input (1024), ``halo`` to tile / 8; ``cache``/``store``
    hold tile embeddings (see :class:`~.tiled_predictor.TiledPredictor`); ``params`` go to
    the method.
    ``tile_runner(rgb, embedding) -> Job[EverythingResult]`` replaces the method (tests).
    """
    from .everything import _as_model, iter_segment_everything

    model = _as_model(model) if isinstance(model, str) else model
    tiled = None
    if method != "fastsam" and tile_runner is None:
        from .tiled_predictor import TiledPredictor

        tiled = TiledPredictor(model, tile, halo, cache=cache, store=store)
        tiled.set_image(image, contrast_limits)
        grid, contrast = tiled.grid, tiled.contrast
    else:
        from .tiled_predictor import _auto_contrast

        size = tile or model_input_size(model)
        grid = TileGrid(image.shape[:2], size, default_halo(size) if halo is None else halo)
        contrast = _auto_contrast(image) if contrast_limits is None else contrast_limits
    if tile_runner is None:
        def tile_runner(rgb, embedding):
            return iter_segment_everything(rgb, model, method, detector, None, embedding, **params)

    pieces, n_prompts = [], 0
    for k, (row, col) in enumerate(grid.tiles()):
        y0, y1, x0, x1 = window = grid.window(row, col)
        if tiled is not None:
            rgb = tiled.tile_rgb(row, col)
            embedding = tiled.tile_embedding(row, col).features
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


@dataclass
class _Piece:
    """A mask in image coordinates with where it was seen."""

    mask: CompactMask
    fields: dict
    score: float
    cut: bool
    tiles: set = field(default_factory=set)
    windows: list = field(default_factory=list)

    @classmethod
    def of(cls, record: Record, tile, window: Box, shape, tolerance: int) -> "_Piece":
        y0, _, x0, _ = window
        mask = shift_mask(record.mask, (y0, x0), shape)
        fields = dict(record._fields)
        fields["bbox"] = [fields["bbox"][0] + x0, fields["bbox"][1] + y0, *fields["bbox"][2:]]
        if "point_coords" in fields:
            fields["point_coords"] = [[p[0] + x0, p[1] + y0] for p in fields["point_coords"]]
        if "box" in fields:
            b = fields["box"]
            fields["box"] = [b[0] + x0, b[1] + y0, b[2] + x0, b[3] + y0]
        fields["crop_box"] = [x0, y0, window[3] - x0, window[1] - y0]
        score = float(fields.get("predicted_iou", 0.0))
        return cls(mask, fields, score, is_cut(mask, window, shape, tolerance), {tile}, [window])

    def record(self) -> Record:
        return Record(self.mask, self.fields)

    def absorb(self, other: "_Piece") -> None:
        """Become the union of both pieces (two views of an object larger than the overlap)."""
        self.mask = union_mask(self.mask, other.mask)
        self.tiles |= other.tiles
        self.windows += other.windows
        y0, x0, y1, x1 = self.mask.bbox
        hull = _hull(self.windows)
        self.fields.update(area=self.mask.area, bbox=[x0, y0, x1 - 1 - x0, y1 - 1 - y0],
                           crop_box=[hull[2], hull[0], hull[3] - hull[2], hull[1] - hull[0]])
        self.score = max(self.score, other.score)


def merge_pieces(pieces: list[_Piece], merge_iou: float = DEFAULT_MERGE_IOU) -> list[_Piece]:
    """Apply the module's merge rule; returns the kept pieces (complete first, by score)."""
    order = sorted(range(len(pieces)), key=lambda i: (pieces[i].cut, -pieces[i].score))
    kept: list[_Piece] = []
    boxes = np.zeros((0, 4), np.int64)  # y0, x0, y1, x1 of kept masks
    for i in order:
        piece = pieces[i]
        if not piece.mask.area:
            continue
        match = _same_object(piece, kept, boxes, merge_iou)
        if match is None:
            kept.append(piece)
            boxes = np.vstack([boxes, np.asarray(piece.mask.bbox)[None]])
        elif piece.cut and kept[match].cut:
            kept[match].absorb(piece)
            boxes[match] = kept[match].mask.bbox
    return kept


def _same_object(piece: _Piece, kept: list[_Piece], boxes: np.ndarray, merge_iou: float):
    y0, x0, y1, x1 = piece.mask.bbox
    touching = np.flatnonzero((boxes[:, 0] < y1) & (y0 < boxes[:, 2])
                              & (boxes[:, 1] < x1) & (x0 < boxes[:, 3]))
    best, best_iou = None, merge_iou
    for j in touching:
        other = kept[j]
        if piece.tiles & other.tiles:
            continue
        seen = intersect(piece.windows[0], _hull(other.windows))
        iou = 0.0 if seen is None else mask_iou_within(piece.mask, other.mask, seen)
        if iou > best_iou:
            best, best_iou = int(j), iou
    return best


# --- compact-mask geometry ---------------------------------------------------------------------
def shift_mask(mask: CompactMask, offset: tuple[int, int], shape) -> CompactMask:
    """A tile's mask moved by (row, col) ``offset`` into an image of ``shape``."""
    if not mask.area:
        return CompactMask(tuple(shape), (0, 0, 0, 0), mask.packed, 0)
    y0, x0, y1, x1 = mask.bbox
    oy, ox = offset
    return CompactMask(tuple(shape), (y0 + oy, x0 + ox, y1 + oy, x1 + ox), mask.packed, mask.area)


def _window_of(mask: CompactMask, box: Box) -> np.ndarray:
    """The mask's pixels inside ``box`` (y0, y1, x0, x1) as a bool array of the box's size."""
    by0, by1, bx0, bx1 = box
    out = np.zeros((by1 - by0, bx1 - bx0), bool)
    if not mask.area:
        return out
    y0, x0, y1, x1 = mask.bbox
    part = intersect((y0, y1, x0, x1), box)
    if part is not None:
        py0, py1, px0, px1 = part
        out[py0 - by0:py1 - by0, px0 - bx0:px1 - bx0] = _unpack_part(mask, part)
    return out


def _unpack_part(mask: CompactMask, part: Box) -> np.ndarray:
    """Unpack only the bytes covering ``part`` (inside the mask's box): a comparison with a
    huge mask (the background) then costs the size of the region, not of the mask."""
    y0, x0, _, _ = mask.bbox
    py0, py1, px0, px1 = part
    c0, c1 = px0 - x0, px1 - x0
    bytes_ = mask.packed[py0 - y0:py1 - y0, c0 // 8:(c1 + 7) // 8]
    bits = np.unpackbits(bytes_, axis=-1).astype(bool)
    return bits[:, c0 % 8:c0 % 8 + (c1 - c0)]


def mask_iou_within(a: CompactMask, b: CompactMask, region: Box) -> float:
    """IoU of two masks counting only the pixels inside ``region`` (y0, y1, x0, x1)."""
    ma, mb = _window_of(a, region), _window_of(b, region)
    union = np.count_nonzero(ma | mb)
    return float(np.count_nonzero(ma & mb)) / union if union else 0.0


def union_mask(a: CompactMask, b: CompactMask) -> CompactMask:
    ay0, ax0, ay1, ax1 = a.bbox
    by0, bx0, by1, bx1 = b.bbox
    box = (min(ay0, by0), max(ay1, by1), min(ax0, bx0), max(ax1, bx1))
    merged = _window_of(a, box) | _window_of(b, box)
    return CompactMask.from_dense(merged, offset=(box[0], box[2]), shape=a.shape)


def is_cut(mask: CompactMask, window: Box, shape, tolerance: int) -> bool:
    """True when the mask reaches within ``tolerance`` px of an inner edge of its window."""
    if not mask.area:
        return False
    y0, x0, y1, x1 = mask.bbox
    wy0, wy1, wx0, wx1 = window
    h, w = shape
    return ((wy0 > 0 and y0 - wy0 <= tolerance) or (wy1 < h and wy1 - y1 <= tolerance)
            or (wx0 > 0 and x0 - wx0 <= tolerance) or (wx1 < w and wx1 - x1 <= tolerance))


def _hull(boxes: list[Box]) -> Box:
    return (min(b[0] for b in boxes), max(b[1] for b in boxes),
            min(b[2] for b in boxes), max(b[3] for b in boxes))

"""Tiles of a large 2D image: each tile is a regular image for any model family.

Geometry along each axis (rows and columns alike), for an image longer than ``tile``:

* windows are ``tile`` pixels long (the model input, so tiles are embedded at full resolution),
  evenly spaced from the first pixel to the last, with consecutive windows overlapping by at
  least ``2 * halo`` pixels; an image no longer than ``tile`` is one window;
* cores partition the image: the border between two cores is the middle of their windows'
  overlap, so every pixel of a core has at least ``halo`` pixels of context inside its window
  (except along the image's own edges).

Example: 8192 px with tile 1024 and halo 128 gives 11 windows per axis: 121 tiles, i.e.
484 MiB of float32 SAM embeddings (242 MiB in a float16 store); halo 64 gives 9 x 9 = 81.

Prompts go to the window that holds them with the most context (:meth:`TileGrid.best_window`);
masks crossing windows are stitched core by core (see ``tiled_predictor``).

Coordinates: boxes here are (y0, y1, x0, x1) half-open pixel ranges, rows first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

DEFAULT_HALO = 128  # for 1024-px tiles: see default_halo

Box = tuple[int, int, int, int]  # y0, y1, x0, x1 (half-open)


def split_axis(length: int, tile: int, halo: int) -> tuple[np.ndarray, np.ndarray]:
    """Window starts (n,) and core cuts (n + 1,) along one axis (see the module docstring)."""
    if length <= tile:
        return np.array([0]), np.array([0, length])
    step_max = tile - 2 * halo
    n = 1 + math.ceil((length - tile) / step_max)
    starts = np.round(np.arange(n) * ((length - tile) / (n - 1))).astype(int)
    middles = (starts[1:] + starts[:-1] + tile) // 2  # middle of each overlap
    return starts, np.concatenate([[0], middles, [length]])


@dataclass(frozen=True)
class TileGrid:
    """The tiles of an image of ``shape`` (H, W): windows of ``tile`` px with ``halo`` context."""

    shape: tuple[int, int]
    tile: int
    halo: int = DEFAULT_HALO
    _rows: tuple = field(init=False, repr=False, compare=False)
    _cols: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        tile, halo = int(self.tile), int(self.halo)
        if tile < 32 or halo < 0 or tile - 2 * halo < 16:
            raise ValueError(f"Tiles of {tile} px with a halo of {halo} px leave no core: use "
                             "tile >= 32 and halo <= (tile - 16) / 2 (e.g. tile 1024, halo 128).")
        object.__setattr__(self, "shape", (int(self.shape[0]), int(self.shape[1])))
        object.__setattr__(self, "tile", tile)
        object.__setattr__(self, "halo", halo)
        object.__setattr__(self, "_rows", split_axis(self.shape[0], tile, halo))
        object.__setattr__(self, "_cols", split_axis(self.shape[1], tile, halo))

    @property
    def ny(self) -> int:
        return len(self._rows[0])

    @property
    def nx(self) -> int:
        return len(self._cols[0])

    def __len__(self) -> int:
        return self.ny * self.nx

    def tiles(self) -> list[tuple[int, int]]:
        """All (row, col) tile indices, row by row."""
        return [(r, c) for r in range(self.ny) for c in range(self.nx)]

    def window(self, row: int, col: int) -> Box:
        """(y0, y1, x0, x1) of the pixels the model sees for tile (row, col)."""
        y0, x0 = int(self._rows[0][row]), int(self._cols[0][col])
        return y0, min(y0 + self.tile, self.shape[0]), x0, min(x0 + self.tile, self.shape[1])

    def core(self, row: int, col: int) -> Box:
        """(y0, y1, x0, x1) of the pixels tile (row, col) is responsible for."""
        cy, cx = self._rows[1], self._cols[1]
        return int(cy[row]), int(cy[row + 1]), int(cx[col]), int(cx[col + 1])

    def key(self, row: int, col: int) -> tuple[int, ...]:
        """The ``EmbeddingKey.tiling`` of a tile: (tile, halo, ny, nx, row, col)."""
        return (self.tile, self.halo, self.ny, self.nx, int(row), int(col))

    def core_of(self, y: float, x: float) -> tuple[int, int]:
        """The tile whose core holds pixel position (y, x) (clipped to the image)."""
        row = int(np.searchsorted(self._rows[1], y, side="right")) - 1
        col = int(np.searchsorted(self._cols[1], x, side="right")) - 1
        return min(max(row, 0), self.ny - 1), min(max(col, 0), self.nx - 1)

    def cores_overlapping(self, box: Box) -> list[tuple[int, int]]:
        """Tiles whose core intersects ``box`` (y0, y1, x0, x1), row by row."""
        y0, y1, x0, x1 = box
        return [(r, c) for r, c in self.tiles()
                if _overlap(self.core(r, c), (y0, y1, x0, x1))]

    def best_window(self, box: Box) -> tuple[int, int] | None:
        """The tile whose window holds all of ``box`` with the most context, or None.

        Context = the smallest distance from the box to a window edge that is not an image
        edge (the model sees the real image edge as it is).  Ties go to the core holding the
        box centre, which by construction has at least ``halo`` of context.
        """
        centre = self.core_of((box[0] + box[1]) / 2, (box[2] + box[3]) / 2)
        best, best_margin = None, -1.0
        for rc in self.tiles():
            margin = self._margin(self.window(*rc), box)
            if margin < 0:
                continue
            if margin > best_margin or (margin == best_margin and rc == centre):
                best, best_margin = rc, margin
        return best

    def _margin(self, window: Box, box: Box) -> float:
        wy0, wy1, wx0, wx1 = window
        y0, y1, x0, x1 = box
        if y0 < wy0 or x0 < wx0 or y1 > wy1 or x1 > wx1:
            return -1.0
        h, w = self.shape
        sides = [(y0 - wy0, wy0 > 0), (wy1 - y1, wy1 < h), (x0 - wx0, wx0 > 0), (wx1 - x1, wx1 < w)]
        inner = [d for d, is_inner in sides if is_inner]
        return float(min(inner)) if inner else math.inf


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def intersect(a: Box, b: Box) -> Box | None:
    """The intersection of two (y0, y1, x0, x1) boxes, None when empty."""
    y0, y1, x0, x1 = max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3])
    return (y0, y1, x0, x1) if y0 < y1 and x0 < x1 else None


def prompt_box(points_xy=None, box_xyxy=None, shape=None) -> Box:
    """The (y0, y1, x0, x1) pixel range spanned by x, y points and an x0, y0, x1, y1 box."""
    xs, ys = [], []
    if points_xy is not None and len(points_xy):
        pts = np.asarray(points_xy, float).reshape(-1, 2)
        xs += [pts[:, 0].min(), pts[:, 0].max()]
        ys += [pts[:, 1].min(), pts[:, 1].max()]
    if box_xyxy is not None:
        b = np.asarray(box_xyxy, float).reshape(4)
        xs += [min(b[0], b[2]), max(b[0], b[2])]
        ys += [min(b[1], b[3]), max(b[1], b[3])]
    if not xs:
        raise ValueError("An empty prompt has no extent.")
    y0, y1 = int(math.floor(min(ys))), int(math.ceil(max(ys))) + 1
    x0, x1 = int(math.floor(min(xs))), int(math.ceil(max(xs))) + 1
    if shape is not None:
        y0, x0 = max(y0, 0), max(x0, 0)
        y1, x1 = min(y1, int(shape[0])), min(x1, int(shape[1]))
    return y0, y1, x0, x1

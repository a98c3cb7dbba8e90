"""Merging everything-mode masks across tiles (the rule is in :mod:`.tiled`).

Masks stay compact (bounding box + bit-packed crop); only unions of cut pieces allocate
their own box.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..tiling.grid import Box, intersect
from .masks import CompactMask
from .result import Record

DEFAULT_MERGE_IOU = 0.5


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

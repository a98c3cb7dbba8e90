"""``TiledPredictor``: prompts on images larger than the model input, one tile at a time.

The image is cut into overlapping windows (:class:`~.grid.TileGrid`); each window is an
ordinary image for the model, so every promptable family works.  A tile is embedded the
first time a prompt needs it (or by :meth:`TiledPredictor.iter_embed`) and kept in an
:class:`EmbeddingCache` (byte budget, LRU) backed by an optional on-disk store.

Which tile decodes a prompt (the rule, tested in ``tests/test_tiling.py``):

1. **one window holds the whole prompt** (all points and the box): the window where the
   prompt has the most context (:meth:`TileGrid.best_window`) decodes it, exactly as an
   untiled image of that window would, and the mask is that window's mask;
2. **otherwise** (a box larger than the overlap allows, or points far apart): every tile
   whose core meets the box (or, without a box, holds a positive point) decodes the box
   clipped to its window with the points inside its window, one mask each
   (``multimask_output`` is ignored: candidates of different tiles do not correspond), and
   the mask is stitched from each tile's **core**, where that tile has at least ``halo``
   pixels of context; its score is the mean of the tiles' scores weighted by their share of
   the box.

Memory: the image is read window by window (never converted or copied whole); logits are
upsampled one window at a time; a mask is returned as a bounding box and the crop inside it.

Coordinates: prompts are x, y pixels of the whole image (SAM convention); boxes of masks are
(row0, row1, col0, col1) half-open, as ``engine.interactive``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

from ..embeddings import (
    Embedding, EmbeddingCache, EmbeddingKey, model_identity, normalisation_key, slice_digest,
    iter_encode,
)
from ..errors import PromptError
from ..images import auto_contrast, to_uint8_rgb, validate_image
from ..interactive import crop_to_bbox, Predictor, returned_logits
from ..interactive.prompts import check_box, check_points
from ..progress import Job, Progress
from .grid import Box, TileGrid, intersect, prompt_box
from .settings import TilingSettings, model_input_size

#: In-memory budget of a TiledPredictor's own cache: 64 SAM tiles (float32, 4 MiB each).
DEFAULT_TILE_BUDGET = 256 << 20


@dataclass
class TilePart:
    """One tile's decode: its low-res logits (1, M, h, w) and IoU predictions (1, M)."""

    tile: tuple[int, int]
    window: Box
    region: Box  # the part of the image this tile's mask fills (its window, or its core)
    low_res: torch.Tensor
    iou: torch.Tensor
    weight: float = 1.0


@dataclass
class TiledLogits:
    """The decode of one prompt set: one part (a single window) or several (stitched)."""

    parts: list[TilePart]

    @property
    def scores(self) -> np.ndarray:
        """(M,) predicted IoU per candidate (weighted mean over stitched tiles)."""
        ious = np.stack([p.iou[0].float().cpu().numpy() for p in self.parts])
        weights = np.array([p.weight for p in self.parts], float)
        return (weights[:, None] * ious).sum(0) / max(weights.sum(), 1e-12)

    @property
    def tiles(self) -> tuple:
        return tuple(p.tile for p in self.parts)


class TiledPredictor:
    """Decode prompts on a large 2D image tile by tile (see the module docstring).

    Args:
        model: a loaded promptable model.
        tile: window side in pixels (default: the model input, 1024 for SAM).
        halo: minimum context around each core, pixels (default: tile / 8, 128 for SAM).
        cache: where tile embeddings live; default a private cache of
            :data:`DEFAULT_TILE_BUDGET` bytes in front of ``store``.
        store: an :class:`~..embeddings.EmbeddingStore` (or any backing store) for the
            default cache.
    """

    def __init__(self, model, tile: int | None = None, halo: int | None = None,
                 cache: EmbeddingCache | None = None, store=None):
        self.predictor = Predictor(model)
        self.model, self.spec = model, self.predictor.spec
        settings = TilingSettings(tile, halo)
        settings.check(model_input_size(model))  # tile and halo leave a core
        _, self.tile, self.halo = settings.resolve(model_input_size(model))
        self.cache = cache if cache is not None else EmbeddingCache(DEFAULT_TILE_BUDGET, store)
        self.model_id = model_identity(model)
        self.image = self.grid = None
        self._lock = threading.RLock()  # one decode at a time: the inner predictor has state
        self.encodes = 0

    # --- image ---------------------------------------------------------------------------
    def set_image(self, image, contrast_limits=None, digest: str | None = None,
                  normalisation=None) -> None:
        """Use a 2D image (H, W[, C]); it is kept by reference and read window by window.

        Non-uint8 images without ``contrast_limits`` are mapped by the 0.5/99.5 percentiles of
        the whole image (sampled), the same for every tile.  ``digest`` / ``normalisation``
        let a caller that already knows the slice digest and key normalisation (the GUI)
        skip hashing and use its own keys.
        """
        validate_image(image[:2, :2])  # shape and dtype; values are checked per window
        if image.ndim != 2 and image.shape[-1] not in (1, 3, 4):
            raise PromptError(f"Expected (H, W) or (H, W, 1|3|4); got {image.shape}.")
        self.contrast = auto_contrast(image) if contrast_limits is None else contrast_limits
        self.image = image
        self.grid = TileGrid(image.shape[:2], self.tile, self.halo)
        self.digest = digest or slice_digest(np.asarray(image))
        self.normalisation = (normalisation if normalisation is not None
                              else normalisation_key(self.contrast))

    @property
    def original_size(self) -> tuple[int, int]:
        self._require_image()
        return self.grid.shape

    def tile_rgb(self, row: int, col: int) -> np.ndarray:
        """(h, w, 3) uint8 RGB of tile (row, col)'s window."""
        y0, y1, x0, x1 = self.grid.window(row, col)
        return to_uint8_rgb(np.asarray(self.image[y0:y1, x0:x1]), self.contrast)

    def tile_key(self, row: int, col: int) -> EmbeddingKey:
        return EmbeddingKey(self.digest, self.model_id, self.normalisation, self.grid.key(row, col))

    # --- embeddings ------------------------------------------------------------------------
    def tile_embedding(self, row: int, col: int) -> Embedding:
        """The tile's embedding from the cache (and its store), computed if needed."""
        key = self.tile_key(row, col)
        entry = self.cache.get(key)
        if entry is None:
            rgb = self.tile_rgb(row, col)
            entry = self.predictor.encode(rgb)
            self.encodes += 1
            self.cache.put(key, entry)
        return entry

    def iter_embed(self, tiles=None, cancel=None) -> Job[int]:
        """Generator: embed ``tiles`` (default all) that are not stored yet, yielding a
        Progress per encoder block; returns how many were computed.  A cancel stops within
        one block; tiles finished before it are kept (cache and store)."""
        self._require_image()
        tiles = self.grid.tiles() if tiles is None else list(tiles)
        store = self.cache.backing_store
        todo = [rc for rc in tiles if not self._stored(store, rc)]
        for k, (row, col) in enumerate(todo):
            rgb = self.tile_rgb(row, col)
            job = iter_encode(self.predictor, rgb, cancel)
            while True:
                try:
                    report = next(job)
                except StopIteration as stop:
                    entry = stop.value
                    break
                yield Progress(k * report.total + report.step, len(todo) * report.total,
                               f"tile {k + 1}/{len(todo)}")
            self.cache.put(self.tile_key(row, col), entry)
            self.encodes += 1
        return len(todo)

    def _stored(self, store, rc) -> bool:
        key = self.tile_key(*rc)
        if key in self.cache:
            return True
        has = getattr(store, "has", None)
        return bool(has(key)) if has is not None else False

    # --- decoding --------------------------------------------------------------------------
    def decode(self, point_coords=None, point_labels=None, box=None, multimask_output=True,
               previous: TiledLogits | None = None, candidate: int = 0) -> TiledLogits:
        """Decode one prompt set (x, y pixels of the whole image) following the module's rule.

        ``previous``/``candidate``: feed back that candidate's low-res logits as
        ``mask_input`` (SAM's refinement) when the prompt lands in the same single tile.
        """
        self._require_image()
        coords, labels = check_points(point_coords, point_labels, self.grid.shape)
        box = check_box(box, self.grid.shape)
        if coords is None and box is None:
            raise PromptError("Give at least one point or a box to segment.")
        extent = prompt_box(coords, box, self.grid.shape)
        single = self.grid.best_window(extent)
        with self._lock:
            if single is not None:
                window = self.grid.window(*single)
                mask_input = _feedback(previous, candidate, single, self.spec)
                part = self._decode_tile(single, window, window, coords, labels, box,
                                         mask_input, multimask_output)
                return TiledLogits([part])
            return TiledLogits(self._decode_stitched(coords, labels, box, extent))

    def _decode_stitched(self, coords, labels, box, extent) -> list[TilePart]:
        if box is not None:
            b = box
            tiles = self.grid.cores_overlapping((int(b[1]), int(np.ceil(b[3])) + 1,
                                                 int(b[0]), int(np.ceil(b[2])) + 1))
        else:
            positive = coords[labels == 1]
            if not len(positive):
                raise PromptError("Give at least one positive point (or a box) to segment.")
            tiles = sorted({self.grid.core_of(y, x) for x, y in positive})
        parts = []
        for rc in tiles:
            window, core = self.grid.window(*rc), self.grid.core(*rc)
            region = intersect(core, extent) or core
            part = self._decode_tile(rc, window, core, coords, labels, box, None, False)
            if part is not None:
                part.weight = float((region[1] - region[0]) * (region[3] - region[2]))
                parts.append(part)
        if not parts:
            raise PromptError("No tile holds a positive point or part of the box.")
        return parts

    def _decode_tile(self, rc, window, region, coords, labels, box, mask_input, multimask):
        """Decode the prompts that fall in ``window``, in its frame; None if nothing does."""
        y0, y1, x0, x1 = window
        local_pts = local_labels = local_box = None
        if coords is not None:
            inside = (coords[:, 0] >= x0) & (coords[:, 0] <= x1) & (coords[:, 1] >= y0) & (coords[:, 1] <= y1)
            if inside.any():
                local_pts = coords[inside] - np.array([x0, y0])
                local_labels = labels[inside]
        if box is not None:
            clipped = np.array([max(box[0], x0), max(box[1], y0), min(box[2], x1), min(box[3], y1)])
            if clipped[2] > clipped[0] and clipped[3] > clipped[1]:
                local_box = clipped - np.array([x0, y0, x0, y0])
        if local_box is None and (local_labels is None or not (local_labels == 1).any()):
            return None
        entry = self.tile_embedding(*rc)
        self.predictor.set_embedding(entry)
        low_res, iou = self.predictor.decode_lowres(local_pts, local_labels, local_box,
                                                    mask_input, multimask)
        return TilePart(rc, window, region, low_res, iou)

    # --- masks -----------------------------------------------------------------------------
    def mask(self, logits: TiledLogits, candidate: int = 0) -> tuple[tuple | None, np.ndarray]:
        """Candidate ``candidate``'s mask: ((row0, row1, col0, col1) or None, bool crop).

        Each tile's logits are upsampled to its window and only its ``region`` is kept.
        """
        parts = logits.parts
        area = parts[0].region if len(parts) == 1 else _union([p.region for p in parts])
        ay0, ay1, ax0, ax1 = area
        out = np.zeros((ay1 - ay0, ax1 - ax0), bool)
        for part in parts:
            index = min(candidate, part.low_res.shape[1] - 1)
            window_mask = self._upsample(part, index)
            wy0, _, wx0, _ = part.window
            ry0, ry1, rx0, rx1 = part.region
            out[ry0 - ay0:ry1 - ay0, rx0 - ax0:rx1 - ax0] = \
                window_mask[ry0 - wy0:ry1 - wy0, rx0 - wx0:rx1 - wx0]
        bbox, crop = crop_to_bbox(out)
        if bbox is None:
            return None, crop
        r0, r1, c0, c1 = bbox
        return (r0 + ay0, r1 + ay0, c0 + ax0, c1 + ax0), crop

    def _upsample(self, part: TilePart, index: int) -> np.ndarray:
        y0, y1, x0, x1 = part.window
        size = (y1 - y0, x1 - x0)
        transform = self.predictor.transform
        low = part.low_res[:, index:index + 1].float()
        with torch.inference_mode():
            logits = transform.postprocess_masks(low, transform.input_size(size), size)
        return (logits[0, 0] > self.model.mask_threshold).cpu().numpy()

    def predict_crops(self, point_coords=None, point_labels=None, box=None,
                      multimask_output: bool = True) -> tuple[list, np.ndarray]:
        """Decode and return ``([(bbox, crop) per candidate], scores (C,))`` without any
        full-image array (the form to use on very large images)."""
        logits = self.decode(point_coords, point_labels, box, multimask_output)
        n = logits.parts[0].low_res.shape[1]
        return [self.mask(logits, i) for i in range(n)], logits.scores

    def predict(self, point_coords=None, point_labels=None, box=None,
                multimask_output: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """As ``Predictor.predict`` without low-res logits: ``(masks (C, H, W) bool, scores (C,))``.
        Costs C x H x W bytes (64 MiB per candidate for 8192 x 8192): prefer predict_crops."""
        crops, scores = self.predict_crops(point_coords, point_labels, box, multimask_output)
        masks = np.zeros((len(crops), *self.grid.shape), bool)
        for i, (bbox, crop) in enumerate(crops):
            if bbox is not None:
                r0, r1, c0, c1 = bbox
                masks[i, r0:r1, c0:c1] = crop
        return masks, scores

    def _require_image(self) -> None:
        if self.grid is None:
            raise RuntimeError("No image is set: call set_image(image) first.")


def _feedback(previous: TiledLogits | None, candidate: int, tile, spec):
    """The low-res logits to feed back, only from the same single tile (clamped as the
    model's predictor returns them, :func:`~..interactive.predictor.returned_logits`)."""
    if previous is None or not spec.supports_mask_input or previous.tiles != (tile,):
        return None
    low = previous.parts[0].low_res
    return returned_logits(spec, low[0, min(candidate, low.shape[1] - 1)])


def _union(boxes: list[Box]) -> Box:
    return (min(b[0] for b in boxes), max(b[1] for b in boxes),
            min(b[2] for b in boxes), max(b[3] for b in boxes))

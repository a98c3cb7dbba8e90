"""SAM's automatic mask generator (point grid), same results, far less memory and time.

Same algorithm and parameters as ``SamAutomaticMaskGenerator``; the differences are in
*when* work happens, never in what is kept:

* the predicted-IoU filter runs on the low-res decoder output, before any upsampling
  (the official code upsamples every candidate first, 3 per point, then drops most);
* surviving candidates are upsampled a few at a time (``upsample_chunk``), and stored as
  bounding box + bit-packed crop instead of full-image masks or RLE;
* point batches are decoded a few at a time on threads of one intra-op thread each
  (``decode_workers``, see :mod:`.parallel`), and kept in batch order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

import numpy as np
import torch

from ..detection.boxes import batched_nms, box_area
from ..embeddings import Embedding
from ..interactive import Predictor
from ..progress import Job, Progress
from .batch_network import batch_network
from .candidates import Candidates
from .methods import checked_params
from .parallel import check_cancel, decode_workers, ordered_map
from .upsample import candidates_from_lowres

#: Prompts decoded at once inside a batch: a cancel takes effect between two such steps
#: (results are bit-identical to one call for the whole batch: each prompt is decoded alone).
DECODE_STEP = 8


@dataclass
class GridParams:
    """SamAutomaticMaskGenerator's parameters, with its defaults.  A model family whose
    official generator has other defaults sets them in its spec (SAM 2:
    ``pred_iou_thresh`` 0.8, :func:`.methods.with_model_defaults`); the algorithm is the
    same (SAM2AutomaticMaskGenerator without ``use_m2m``, its default)."""

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    min_mask_region_area: int = 0
    upsample_chunk: int = 16  # ours: candidates upsampled at once (memory, not results)
    decode_workers: int | None = None  # ours: batches decoded at once (speed, not results)

    @classmethod
    def from_kwargs(cls, **kwargs) -> "GridParams":
        params = checked_params(cls, "grid", kwargs)
        if params.points_per_side < 1 or params.points_per_batch < 1:
            raise ValueError("points_per_side and points_per_batch must be at least 1.")
        if params.decode_workers is not None and params.decode_workers < 1:
            raise ValueError("decode_workers must be at least 1 (or None: one per torch thread).")
        return params


def build_point_grid(n_per_side: int) -> np.ndarray:
    """(n*n, 2) x, y in [0, 1]: cell centres of an n x n grid, row by row."""
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs = np.tile(side[None, :], (n_per_side, 1))
    ys = np.tile(side[:, None], (1, n_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def generate_crop_boxes(im_size: tuple[int, int], n_layers: int, overlap_ratio: float):
    """SAM's crops: the whole image, then 2^i x 2^i overlapping crops per layer i.

    Returns ([x0, y0, x1, y1] per crop, layer index per crop)."""
    im_h, im_w = im_size
    boxes, layers = [[0, 0, im_w, im_h]], [0]
    short_side = min(im_h, im_w)
    for i_layer in range(n_layers):
        n_crops = 2 ** (i_layer + 1)
        overlap = int(overlap_ratio * short_side * (2 / n_crops))
        crop_w = int(math.ceil((overlap * (n_crops - 1) + im_w) / n_crops))
        crop_h = int(math.ceil((overlap * (n_crops - 1) + im_h) / n_crops))
        xs = [int((crop_w - overlap) * i) for i in range(n_crops)]
        ys = [int((crop_h - overlap) * i) for i in range(n_crops)]
        for x0, y0 in product(xs, ys):
            boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
            layers.append(i_layer + 1)
    return boxes, layers


def iter_grid(predictor: Predictor, rgb: np.ndarray, params: GridParams,
              embedding: Embedding | torch.Tensor | None = None, cancel=None
              ) -> Job[tuple[Candidates, int]]:
    """Generator: yields Progress, returns (kept Candidates in image coordinates, prompts decoded).

    ``embedding`` of the whole image may be given (e.g. from the cache) to skip its encoder run.
    ``cancel`` (an Event) stops the run between two steps of a batch (raises Cancelled).
    Progress counts the decoder batches of all crops: "decoding: 3/16 batches done".
    """
    crop_boxes, layer_idxs = generate_crop_boxes(rgb.shape[:2], params.crop_n_layers,
                                                 params.crop_overlap_ratio)
    grids = [build_point_grid(int(params.points_per_side / params.crop_n_points_downscale_factor ** i))
             for i in range(params.crop_n_layers + 1)]
    n_batches = [math.ceil(len(grids[layer]) / params.points_per_batch) for layer in layer_idxs]
    total, done, parts = sum(n_batches) + len(crop_boxes), 0, []
    n_total, decoded = sum(n_batches), 0
    for crop_box, layer in zip(crop_boxes, layer_idxs):
        yield Progress(done, total, f"encoding crop {len(parts) + 1}/{len(crop_boxes)}")
        x0, y0, x1, y1 = crop_box
        crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
        if embedding is not None and crop.shape[:2] == rgb.shape[:2]:
            predictor.set_embedding(embedding, crop.shape[:2])
        else:
            predictor.set_embedding(predictor.encode(crop))
        done += 1
        yield Progress(done, total, f"decoding: {decoded}/{n_total} batches done")
        points = grids[layer] * np.array(crop.shape[:2])[None, ::-1]
        batches = []
        decode = _batch_decoder(predictor, points, crop_box, rgb.shape[:2], params, cancel)
        starts = range(0, len(points), params.points_per_batch)
        # the loop takes every batch of this crop before the next crop changes the embedding
        for part in ordered_map(decode, starts, decode_workers(params.decode_workers), cancel):
            batches.append(part)
            done, decoded = done + 1, decoded + 1
            yield Progress(done, total, f"decoding: {decoded}/{n_total} batches done")
        parts.append(_nms_within_crop(Candidates.concat(batches), params))
    data = Candidates.concat(parts)
    if len(crop_boxes) > 1:  # prefer masks from smaller crops where crops overlap
        crop_t = torch.as_tensor(data.crop_boxes, dtype=torch.float32)
        keep = batched_nms(data.boxes.float(), 1 / box_area(crop_t), torch.zeros(len(data)),
                           params.crop_nms_thresh)
        data = data.filter(keep)
    return data, sum(len(grids[layer]) for layer in layer_idxs)


def _nms_within_crop(data: Candidates, params: GridParams) -> Candidates:
    keep = batched_nms(data.boxes.float(), data.iou, torch.zeros(len(data)), params.box_nms_thresh)
    return data.filter(keep)


def _batch_decoder(predictor: Predictor, points: np.ndarray, crop_box, orig_size,
                   params: GridParams, cancel=None):
    """start -> Candidates of the batch of ``points`` beginning at ``start``."""
    step = params.points_per_batch
    return lambda start: _process_batch(predictor, points[start:start + step], crop_box,
                                        orig_size, params, cancel=cancel)


def _process_batch(predictor: Predictor, points: np.ndarray, crop_box, orig_size,
                   params: GridParams, cancel=None) -> Candidates:
    crop_size = predictor.original_size
    coords = torch.as_tensor(predictor.transform.apply_coords(points, crop_size))  # float64, as SAM
    labels = torch.ones(len(points), 1, dtype=torch.int64)
    low_res, iou = decode_in_steps(predictor, cancel, point_coords=coords[:, None, :],
                                   point_labels=labels, multimask_output=True)
    n_masks = low_res.shape[1]
    low_res, iou = low_res.flatten(0, 1), iou.flatten(0, 1)
    point_rows = np.repeat(points, n_masks, axis=0)
    if params.pred_iou_thresh > 0:  # cheap: before any upsampling
        keep = torch.nonzero(iou > params.pred_iou_thresh).flatten()
        low_res, iou, point_rows = low_res[keep], iou[keep], point_rows[keep.numpy()]
    return candidates_from_lowres(predictor, low_res, iou, crop_box, orig_size,
                                  params.stability_score_thresh, params.stability_score_offset,
                                  points=point_rows, chunk=params.upsample_chunk, cancel=cancel)


def decode_in_steps(predictor: Predictor, cancel, multimask_output: bool, **prompts):
    """``predictor.decode_batch`` over a batch of prompts, :data:`DECODE_STEP` at a time,
    with ``cancel`` checked between steps; (low-res logits, IoU) of the whole batch, float32
    (a bf16 model decodes with :func:`.batch_network.batch_network`)."""
    n = len(next(v for v in prompts.values() if v is not None))
    parts = []
    network = batch_network(predictor.model)  # a bf16 model's bfloat16 decoder
    with torch.inference_mode():
        for start in range(0, n, DECODE_STEP):
            check_cancel(cancel)
            step = {k: None if v is None else v[start:start + DECODE_STEP] for k, v in prompts.items()}
            parts.append(predictor.decode_batch(**step, multimask_output=multimask_output,
                                                network=network))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

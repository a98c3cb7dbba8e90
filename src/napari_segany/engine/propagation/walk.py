"""Slice-by-slice propagation of one object through a z-stack or a time series.

Starting from a mask on slice ``index`` along ``axis``, each neighbouring slice is segmented
with prompts derived from the previous slice's accepted mask (box, inner points, low-res
logits: :mod:`.prompts`), until the volume's end, the user's range, or a stop
rule says the object is lost.  Both directions walk away from the seed (forward first).

Shapes and axes (napari's order): ``volume`` is (..., Y, X) with one or two leading axes
(ZYX, TYX, TZYX), plus a trailing RGB(A) axis when ``rgb``.  ``axis`` is the leading axis
to walk along; the other leading axes stay at ``index``'s position.  Masks are (Y, X) bool.

Cost per slice with a warm cache: one decoder call (one mask unless ``multimask``), the
upsampling of that one mask only where it can be non-empty (:mod:`.upsample`),
and work on its bounding box only.  Embeddings come from the cache, computed ahead in a
background thread while the decoder runs (:mod:`.prefetch`).  Nothing reads or
copies the whole volume: slices are read one at a time, masks kept as bounding-box crops.

:func:`iter_propagate` is the generator form (yields :class:`~.progress.Progress`, returns
a :class:`PropagationResult`; a ``cancel`` event or closing it stops the run, which raises
:class:`~.errors.Cancelled` and writes nothing).  :func:`propagate` runs it to the end.
"""
from __future__ import annotations

import threading
from typing import Callable

import numpy as np
import torch

from . import upsample as propagation_upsample
from ..embeddings import EmbeddingCache, normalisation_key
from ..errors import Cancelled, CheckpointError, ImageError
from ..images import to_uint8_rgb
from ..interactive import crop_to_bbox, returned_logits
from ..progress import Job, Progress, run
from .prefetch import EmbeddingPrefetcher, SliceStack
from .prompts import (
    EMPTY, PromptOptions, StopRules, anisotropy, choose_candidate, derive_prompts, rejection,
)
from .result import OK, SEED, SKIPPED, PropagationResult, SliceReport

DIRECTIONS = ("both", "forward", "backward")
WAIT_S = 0.1  # how often a run waiting for an embedding reports progress (and sees a cancel)

__all__ = ["propagate", "iter_propagate", "iter_propagate_stack", "PromptOptions", "StopRules",
           "PropagationResult", "SliceReport", "SliceStack"]


def propagate(volume, seed_mask, index, model, axis: int = 0, direction: str = "both", *,
              callback: Callable[[Progress], object] | None = None, **options) -> PropagationResult:
    """Propagate ``seed_mask`` from slice ``index`` through ``volume`` along ``axis``.

    Blocking form of :func:`iter_propagate` (same arguments); ``callback`` sees each
    Progress and may return False to cancel (raises Cancelled).
    """
    return run(iter_propagate(volume, seed_mask, index, model, axis, direction, **options), callback)


def iter_propagate(volume, seed_mask, index, model, axis: int = 0, direction: str = "both", *,
                   stop_at: tuple[int, int] | None = None, rgb: bool = False,
                   contrast_limits=None, scale=None, prompts: PromptOptions | None = None,
                   rules: StopRules | None = None, cache: EmbeddingCache | None = None,
                   prefetch: int = 0, cancel: threading.Event | None = None,
                   ) -> Job[PropagationResult]:
    """Generator form of :func:`propagate`.

    volume: (..., Y, X[, C]) array (numpy, zarr, dask: read slice by slice).
    seed_mask: (Y, X) bool mask of the object on the seed slice.
    index: the seed slice: an int along ``axis``, or one index per leading axis (TZYX:
        ``(t, z)``), which also fixes the axes not walked along.
    model: a loaded model (``load_model``), its name, or a Predictor-like object.
    direction: "both", "forward" (increasing index) or "backward".
    stop_at: (first, last) slice indices along ``axis`` (inclusive) to stay within.
    rgb: the last axis of ``volume`` holds RGB(A) channels.
    contrast_limits: (lo, hi) mapping every slice to uint8; None: per-slice percentiles.
    scale: napari layer scale of the spatial axes; only the slice spacing along ``axis``
        relative to the XY pixel size is used (area stop rule, see StopRules).  Leave None
        for a time axis: one frame is one step.
    prompts, rules: :class:`PromptOptions`, :class:`StopRules` (documented defaults).
    cache: the EmbeddingCache to read and fill (the GUI shares its own); a new one if None.
    prefetch: how many slices ahead of the decoder to embed in the background.  0 (the
        default): a slice is embedded when the walk reaches it, never beside a decode; on two
        quiet cores that costs 1.04x (fp32) / 1.07x (bf16) one embedding per cold slice
        against 1.06x / 1.12x for 2 ahead (docs/benchmarks.md), and embeds nothing past
        a stop.
    cancel: an Event; setting it stops the run at the next slice or encoder block.
    """
    spatial = _spatial_shape(volume, rgb)
    axis = _check_axis(axis, len(spatial))
    position = _seed_position(index, axis, spatial)
    stack = stack_from_array(volume, axis, position, rgb, contrast_limits)
    return iter_propagate_stack(
        stack, seed_mask, position[axis], model, direction, stop_at=stop_at,
        steps=anisotropy(scale, axis), prompts=prompts,
        rules=rules, cache=cache, prefetch=prefetch, cancel=cancel,
        meta=dict(axis=axis, position=position))


def iter_propagate_stack(stack: SliceStack, seed_mask, seed: int, model, direction: str = "both",
                         *, stop_at=None, steps: float = 1.0, prompts=None, rules=None,
                         cache=None, prefetch: int = 0, cancel=None, meta=None
                         ) -> Job[PropagationResult]:
    """The propagation over any :class:`SliceStack` (the GUI builds one from its layer).

    ``steps``: the slice spacing in XY pixel sizes (:func:`.prompts.anisotropy`).
    Checks the arguments at once, then returns the generator.
    """
    predictor = _predictor_for(model)
    seed_mask = _check_seed(seed_mask, stack, seed)
    runs = _runs(seed, stack.length, direction, stop_at)
    result = PropagationResult(seed=seed, shape=seed_mask.shape, length=stack.length, **(meta or {}))
    result.add(SliceReport(seed, "seed", SEED, 1.0, int(seed_mask.sum()), float("nan"),
                           *crop_to_bbox(seed_mask)))
    track = Track(predictor, result.reports[0], prompts or PromptOptions(), rules or StopRules(), steps)
    order = [i for _, indices, _ in runs for i in indices]
    prefetcher = EmbeddingPrefetcher(stack, predictor, cache if cache is not None else EmbeddingCache(),
                                     order, prefetch)
    return _walk(runs, track, result, prefetcher, cancel or threading.Event())


def _walk(runs, track: Track, result: PropagationResult, prefetcher: EmbeddingPrefetcher,
          cancel: threading.Event) -> Job[PropagationResult]:
    total = sum(len(indices) for _, indices, _ in runs)
    offset = 0  # position of the run's first slice in the prefetcher's order
    prefetcher.start()
    try:
        yield Progress(0, total, "propagating")
        for name, indices, reason in runs:
            track.restart()
            for k, index in enumerate(indices):
                entry = yield from _wait_for(prefetcher, offset + k, total, index, cancel)
                report = track.segment(index, entry, name)
                result.add(report)
                if report.rejected:
                    reason = report.status
                    break
                yield Progress(offset + k + 1, total, f"{name}: slice {index}, score {report.score:.2f}")
            result.stops[name] = reason
            offset += len(indices)
        if cancel.is_set():
            raise Cancelled("The propagation was cancelled; nothing was written.")
    finally:
        prefetcher.close()
    result.encoded = prefetcher.encoded
    return result


def _wait_for(prefetcher, position: int, total: int, index: int, cancel: threading.Event):
    """The embedding of ``index`` (at ``position`` of the order), reporting while waiting."""
    while True:
        if cancel.is_set():
            raise Cancelled("The propagation was cancelled; nothing was written.")
        entry = prefetcher.get(position, WAIT_S)
        if entry is not None:
            return entry
        yield Progress(position, total, f"computing the embedding of slice {index}")


def walk_range(start: int, length: int, direction: str, stop_at, start_name: str
               ) -> tuple[int, int]:
    """(first, last) index a walk from ``start`` may reach: ``stop_at`` or the whole line;
    ValueError for an unknown direction or a range that does not hold ``start``."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}; got {direction!r}.")
    first, last = 0, length - 1
    if stop_at is not None:
        first, last = sorted(int(v) for v in stop_at)
        if not (0 <= first <= start <= last < length):
            raise ValueError(f"The range {first}..{last} must lie in 0..{length - 1} and hold "
                             f"{start_name} {start}.")
    return first, last


def _runs(seed: int, length: int, direction: str, stop_at) -> list[tuple[str, list[int], str]]:
    """[(direction, slice indices in visiting order, why it ends if nothing stops it)]."""
    first, last = walk_range(seed, length, direction, stop_at, "the seed slice")
    forward = ("forward", list(range(seed + 1, last + 1)), "end" if last == length - 1 else "range")
    backward = ("backward", list(range(seed - 1, first - 1, -1)), "end" if first == 0 else "range")
    return {"both": [forward, backward], "forward": [forward], "backward": [backward]}[direction]


class Track:
    """Segments the slices of one direction, each prompted by the last kept mask.

    Only the last kept mask's low-res logits are held (256 KB), not every slice's.
    """

    def __init__(self, predictor, seed: SliceReport, prompts: PromptOptions, rules: StopRules,
                 steps: float):
        self.predictor, self.seed, self.prompts, self.rules, self.steps = (
            predictor, seed, prompts, rules, steps)
        spec = getattr(predictor, "spec", None)
        self.mask_input_ok = bool(getattr(spec, "supports_mask_input", False))
        self.restart()

    def restart(self) -> None:
        self.last, self.last_logits = self.seed, None  # a committed seed has no logits

    def segment(self, index: int, entry, direction: str) -> SliceReport:
        """Decode slice ``index`` (its embedding ``entry``) and judge the mask."""
        last, predictor = self.last, self.predictor
        predictor.set_embedding(entry)
        p = derive_prompts(last.bbox, last.crop, self.last_logits, tuple(entry.original_size),
                           self.prompts, self.mask_input_ok)
        low_res, iou = predictor.decode_lowres(p.points, p.labels, p.box, p.mask_input,
                                               self.prompts.multimask)
        scores = iou[0].float().cpu().numpy()
        candidates = low_res[0].float().cpu().numpy()  # (M, h, w): M = 1 unless multimask
        k = choose_candidate(candidates, scores, self.last_logits)
        bbox, crop = propagation_upsample.mask_crop(predictor, low_res[:, k:k + 1])  # the kept one
        area = int(crop.sum())
        reason, ratio = rejection(float(scores[k]), area, last.area, self.rules, self.steps)
        status = reason or OK
        if reason == EMPTY and not self.rules.stop_on_empty:
            status = SKIPPED
        report = SliceReport(index, direction, status, float(scores[k]), area, ratio, bbox, crop)
        if status == OK:  # fed back as the next slice's mask_input, as the predictor returns it
            kept = returned_logits(getattr(predictor, "spec", None), low_res[0, k])
            self.last, self.last_logits = report, kept.float().cpu().numpy()
        return report


# --- arguments --------------------------------------------------------------------------------
def stack_from_array(volume, axis: int, position: tuple[int, ...], rgb: bool = False,
                     contrast_limits=None) -> SliceStack:
    """The slices of ``volume`` along ``axis`` through ``position`` (no copy of the volume)."""
    limits = None if contrast_limits is None else normalisation_key(contrast_limits)

    def read(i: int) -> np.ndarray:
        where = list(position)
        where[axis] = i
        return np.asarray(volume[tuple(where)])

    return SliceStack(int(np.shape(volume)[axis]), read, lambda raw: to_uint8_rgb(raw, limits), limits)


def _spatial_shape(volume, rgb: bool) -> tuple[int, ...]:
    shape = tuple(np.shape(volume))
    if rgb:
        if not shape or shape[-1] not in (3, 4):
            raise ImageError(f"rgb=True needs a last axis of 3 or 4 channels; got shape {shape}.")
        shape = shape[:-1]
    if len(shape) not in (3, 4):
        raise ImageError(f"Propagation needs a stack of shape (Z or T, Y, X) or (T, Z, Y, X); got "
                         f"spatial shape {shape}. For RGB stacks pass rgb=True.")
    return shape


def _check_axis(axis: int, ndim: int) -> int:
    leading = ndim - 2
    if not -ndim <= axis < ndim or (axis % ndim) >= leading:
        raise ValueError(f"axis must be one of the {leading} axes before Y, X (0..{leading - 1}); "
                         f"got {axis}.")
    return axis % ndim


def _seed_position(index, axis: int, spatial: tuple[int, ...]) -> tuple[int, ...]:
    leading = spatial[:-2]
    position = np.atleast_1d(np.asarray(index, dtype=int)).tolist()
    if len(position) == 1 and len(leading) > 1:
        raise ValueError(f"A {len(spatial)}D volume needs the seed position on all {len(leading)} "
                         f"leading axes, e.g. index=(t, z); got {index}.")
    if len(position) != len(leading):
        raise ValueError(f"index needs {len(leading)} value(s) (the leading axes); got {index}.")
    for i, (p, n) in enumerate(zip(position, leading)):
        if not 0 <= p < n:
            raise ValueError(f"index {p} on axis {i} is outside 0..{n - 1}.")
    return tuple(position)


def _check_seed(seed_mask, stack: SliceStack, seed: int) -> np.ndarray:
    mask = np.asarray(seed_mask)
    if mask.dtype != bool:
        mask = mask != 0
    shape = np.shape(stack.read(seed))[:2]
    if mask.shape != shape:
        raise ValueError(f"seed_mask has shape {mask.shape} but the slices are {shape} (Y, X).")
    if not mask.any():
        raise ValueError(f"seed_mask is empty on slice {seed}: draw or commit the object there first.")
    return mask


def _predictor_for(model):
    """A predictor of our own (the caller's keeps its image) from the one rule
    (:func:`~..tiling.predictor_for`, whole slices), or a stand-in as given.  Propagation
    decodes low-res logits of a prompt decoder: FastSAM, whose prompts select among its
    masks, is refused."""
    from ..interactive import Predictor
    from ..tiling import predictor_for

    if isinstance(model, str):
        from ..weights import load_model

        model = load_model(model)
    if type(model) is Predictor:
        model = model.model
    if isinstance(model, torch.nn.Module):
        predictor = predictor_for(model)
        if not isinstance(predictor, Predictor):
            raise CheckpointError(
                f"{model.spec.name} cannot propagate: its prompts select among the masks of one "
                "pass, with no mask to carry to the next slice. Choose a promptable model (SAM, "
                "MobileSAM, EfficientSAM, SAM 2) for propagation.")
        return predictor
    if not all(hasattr(model, name) for name in ("decode_lowres", "upsample", "set_embedding", "encode")):
        raise TypeError(f"model must be a loaded model, its name or a Predictor; got {type(model).__name__}.")
    return model

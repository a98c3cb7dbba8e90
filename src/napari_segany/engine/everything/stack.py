"""Everything mode over every plane of a stack (a z-stack, a time series, a folder of images),
each plane whole or tile by tile: the one job the widget, the command line and the API run.

The models are resolved once (a registry name would otherwise be loaded for every plane);
each plane is tiled when :class:`~..tiling.TilingSettings` says so (large planes: tile by
tile, merged across tiles, :mod:`.tiled`), else runs :func:`iter_segment_everything` whole,
with its image embedding from ``cache`` when one is given.  Progress is reported over the
whole stack, so one bar covers all planes and a cancel stops between two decoder batches of
any plane.  Nothing is returned (or written by a caller) before the last plane is done.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ...models.registry import PROMPTABLE
from ..embeddings import EmbeddingKey, iter_encode, model_identity, normalisation_key, slice_digest
from ..errors import ImageError
from ..images import to_uint8_rgb
from ..interactive import Predictor
from ..progress import Job, nested, run
from ..tiling import TilingSettings, model_input_size
from .methods import METHOD_TASK, check_detector, check_method, check_network


@dataclass(frozen=True)
class Plane:
    """One 2D plane of a stack: the model sees ``to_uint8_rgb(image, contrast_limits)``.

    ``digest`` and ``normalisation`` are what embedding keys call it (default: the digest of
    ``image`` and the contrast limits): a viewer whose ``image`` is its own conversion of a
    layer's pixels passes those of the pixels, so that its widgets share the embeddings.
    ``name`` names the plane in errors (default: "plane k/n" in a stack).
    """

    image: np.ndarray
    contrast_limits: tuple[float, float] | None = None
    digest: str | None = None
    normalisation: object = None
    name: str = ""

    def key(self, model_id: str) -> EmbeddingKey:
        normalisation = (self.normalisation if self.normalisation is not None
                         else normalisation_key(self.contrast_limits))
        return EmbeddingKey(self.digest or slice_digest(self.image), model_id, normalisation)


def iter_segment_stack(planes: Iterable, n_planes: int, model, method: str = "grid",
                       detector=None, contrast_limits=None, *, tiling: TilingSettings | None = None,
                       cache=None, unit: str = "plane", cancel=None, **params) -> Job[list]:
    """Generator: yields Progress, returns one EverythingResult per plane, in order.

    planes: an iterable of 2D images (H, W[, C]) mapped with ``contrast_limits``, or of
        :class:`Plane`, read lazily (a stack on disk stays there); n_planes: how many.
    tiling: when and how planes are tiled (default ``TilingSettings()``: planes longer than
        twice the model input, at least 2048 px; ``TilingSettings(enabled=False)``: never).
    cache: an EmbeddingCache for the image embeddings of whole planes and of tiles (a plane
        embedded before is not encoded again); None computes them.
    unit: what progress messages call a plane ("slice 2/5: ...").
    cancel: an Event; once set, the job raises Cancelled within one encoder block or one
        step of a decoder batch (a caller that merely stops iterating waits for the batch).
    """
    from . import as_detector, as_model

    check_method(method)
    model = as_model(model)
    check_network(method, model)
    if method == "object_aware" and detector is not None:
        detector = as_detector(detector)
        check_detector(detector)
    tiling = tiling or TilingSettings()
    size = model_input_size(model)
    results = []
    for k, item in enumerate(planes):
        plane = item if isinstance(item, Plane) else Plane(item, contrast_limits)
        name = plane.name or (f"{unit} {k + 1}/{n_planes}" if n_planes > 1 else "")
        prefix = f"{unit} {k + 1}/{n_planes}: " if n_planes > 1 else ""
        try:
            grid = tiling.plan(np.shape(plane.image), size)
            job = (_tiled_plane(plane, model, method, detector, grid, cache, params, cancel)
                   if grid else _whole_plane(plane, model, method, detector, cache, params, cancel))
            results.append((yield from nested(job, k, n_planes, prefix)))
        except ImageError as exc:  # in a stack, say which plane (the rest may be fine)
            raise ImageError(f"{name}: {exc}" if name else str(exc)) from None
    return results


def _whole_plane(plane: Plane, model, method, detector, cache, params, cancel=None):
    from . import iter_segment_everything

    rgb = to_uint8_rgb(plane.image, plane.contrast_limits)
    embedding, parts = None, 1
    if cache is not None and METHOD_TASK[method] == PROMPTABLE:
        key = plane.key(model_identity(model))
        embedding, parts = cache.get(key), 2
        if embedding is None:  # the first half of this plane's progress
            embedding = yield from nested(iter_encode(Predictor(model), rgb, cancel), 0, 2,
                                          "encoding ")
            cache.put(key, embedding)
    job = iter_segment_everything(rgb, model, method, detector, embedding=embedding,
                                  cancel=cancel, **params)
    return (yield from nested(job, parts - 1, parts))


def _tiled_plane(plane: Plane, model, method, detector, grid, cache, params, cancel=None):
    from .tiled import iter_segment_everything_tiled

    return (yield from iter_segment_everything_tiled(
        plane.image, model, method, detector, plane.contrast_limits, tile=grid.tile,
        halo=grid.halo, cache=cache, digest=plane.digest, normalisation=plane.normalisation,
        cancel=cancel, **params))


def segment_stack(stack: np.ndarray, model, method: str = "grid", detector=None,
                  contrast_limits=None, callback=None, tiling: TilingSettings | None = None,
                  **params) -> list:
    """Everything mode on every plane of an (N, H, W[, C]) array; one EverythingResult per plane.

    ``contrast_limits`` (lo, hi) apply to all planes alike (recommended for a stack: the same
    intensity means the same thing in every slice); None stretches each plane by its own
    percentiles.  Large planes are tiled as ``tiling`` says (see :func:`iter_segment_stack`).
    ``callback`` as in :func:`segment_everything`.
    """
    stack = np.asarray(stack)
    return run(iter_segment_stack(iter(stack), len(stack), model, method, detector,
                                  contrast_limits, tiling=tiling, **params), callback)

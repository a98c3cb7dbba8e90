"""Everything mode over several 2D planes (a z-stack, a time series, a folder of images).

The models are resolved once (a registry name would otherwise be loaded for every plane),
then each plane runs :func:`iter_segment_everything`; progress is reported over the whole
stack, so one bar covers all planes and a cancel stops between two decoder batches of any
plane.  Nothing is returned (or written by a caller) before the last plane is done.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from ..progress import Job, nested, run


def iter_segment_planes(planes: Iterable[np.ndarray], n_planes: int, model, method: str = "grid",
                        detector=None, contrast_limits=None, embedding_for: Callable | None = None,
                        **params) -> Job[list]:
    """Generator: yields Progress, returns one EverythingResult per plane, in order.

    planes: an iterable of 2D images (H, W[, C]), read lazily (a stack on disk stays there);
    n_planes: how many it yields (for the progress bar); embedding_for: optional
    ``(plane_index, rgb) -> embedding or None`` (e.g. a cache lookup).
    """
    from . import _as_detector, _as_model, iter_segment_everything
    from ..errors import ImageError
    from ..images import to_uint8_rgb

    model = _as_model(model)
    if method == "object_aware" and detector is not None:
        detector = _as_detector(detector)
    results = []
    for k, plane in enumerate(planes):
        try:
            rgb = to_uint8_rgb(plane, contrast_limits)
        except ImageError as exc:  # in a stack, say which plane (the rest may be fine)
            raise ImageError(f"plane {k + 1}/{n_planes}: {exc}" if n_planes > 1 else str(exc)) from None
        embedding = embedding_for(k, rgb) if embedding_for is not None else None
        prefix = f"plane {k + 1}/{n_planes}: " if n_planes > 1 else ""
        job = iter_segment_everything(rgb, model, method, detector, embedding=embedding, **params)
        results.append((yield from nested(job, k, n_planes, prefix)))
    return results


def segment_stack(stack: np.ndarray, model, method: str = "grid", detector=None,
                  contrast_limits=None, callback=None, **params) -> list:
    """Everything mode on every plane of an (N, H, W[, C]) array; one EverythingResult per plane.

    ``contrast_limits`` (lo, hi) apply to all planes alike (recommended for a stack: the same
    intensity means the same thing in every slice); None stretches each plane by its own
    percentiles.  ``callback`` as in :func:`segment_everything`.
    """
    stack = np.asarray(stack)
    return run(iter_segment_planes(iter(stack), len(stack), model, method, detector,
                                   contrast_limits, **params), callback)

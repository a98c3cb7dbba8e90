"""Automatic 3D objects: everything mode on every slice of a volume, then linked.

:func:`iter_segment_volume` is the job (yields Progress, returns the labels) for workers;
:func:`segment_volume` runs it to the end.  :func:`iter_link_results` links results
already computed (the Segment Everything dock's, whose filters then still select masks).  Each slice is segmented with the public
``iter_segment_everything`` (any method), painted (smaller masks on top) and linked to the
previous slice at once (:class:`SliceLinker`), so memory holds the output and one slice's
result.  Cancelling (closing the job) stops between two progress reports of any slice;
nothing is returned then.
"""
from __future__ import annotations

import numpy as np

from ..everything import as_detector, as_model, iter_segment_everything
from ..progress import STEPS_PER_PART, Job, Progress, nested, run
from .overlap import LABEL_DTYPE, check_min_iou
from .slice_linker import SliceLinker

STEPS_PER_SLICE = STEPS_PER_PART  # one slice is one part of the job (progress.nested)


def segment_volume(volume, model, method: str = "grid", link_iou: float = 0.5, detector=None,
                   contrast_limits=None, callback=None, **params) -> np.ndarray:
    """Every object of a (Z, Y, X) volume as 3D labels, one id per object.

    Args:
        volume: (Z, Y, X) or (Z, Y, X, C) image, slices along the first axis; numpy or
            sliceable (zarr, dask), read one slice at a time.
        model: as ``segment_everything`` (a loaded model or its registry name, loaded once).
        method: "grid", "object_aware" or "fastsam".
        link_iou: masks on neighbouring slices with IoU >= link_iou get one id.
        detector: object_aware only: the MobileSAMv2 detector (loaded, its registry name or
            the path to ObjectAwareModel.pt; loaded once).
        contrast_limits: (lo, hi) for every slice alike (recommended: the same intensity then
            means the same in every slice); None stretches each slice by its percentiles.
        callback: sees each Progress; return False to cancel (raises Cancelled).
        **params: the method's parameters, as for ``segment_everything``.

    Returns:
        (Z, Y, X) int32 labels: ids 1..N in order of first appearance, 0 background.
    """
    return run(iter_segment_volume(volume, model, method, link_iou, detector, contrast_limits,
                                   **params), callback)


def iter_segment_volume(volume, model, method: str = "grid", link_iou: float = 0.5,
                        detector=None, contrast_limits=None, **params) -> Job[np.ndarray]:
    """Generator form of :func:`segment_volume`: yields Progress, returns the labels."""
    shape = _check_volume(volume)
    linker = SliceLinker(check_min_iou(link_iou, "link_iou"))
    model = as_model(model)
    detector = as_detector(detector) if method == "object_aware" else detector
    out = np.zeros(shape, LABEL_DTYPE)
    plane = np.zeros(shape[1:], LABEL_DTYPE)
    for z in range(shape[0]):
        job = iter_segment_everything(np.asarray(volume[z]), model, method, detector,
                                          contrast_limits, **params)
        result = yield from nested(job, z, shape[0], f"slice {z + 1}/{shape[0]}: ")
        linked = linker.push(result.paint(out=plane))
        if linked is not None:  # a slice is final once the next is seen
            out[z - 1] = linked
    if shape[0]:
        out[shape[0] - 1] = linker.finish()
    yield Progress(shape[0] * STEPS_PER_SLICE, shape[0] * STEPS_PER_SLICE,
                   f"{linker.count} objects in {shape[0]} slices")
    return out


def _check_volume(volume) -> tuple[int, int, int]:
    from ..errors import ImageError

    shape = tuple(int(s) for s in getattr(volume, "shape", np.shape(volume)))
    colour = len(shape) == 4 and shape[-1] in (3, 4)
    if len(shape) - colour != 3:
        raise ImageError(f"segment_volume needs a (Z, Y, X) volume (or (Z, Y, X, 3) colour), "
                         f"got shape {shape}: for one image use segment_everything; for a "
                         "(T, Z, Y, X) series, give one time point.")
    return shape[:3]


def iter_link_results(results, min_iou: float = 0.5) -> Job[list[np.ndarray]]:
    """Link the everything-mode results of consecutive slices (an EverythingResult per slice,
    in order) into 3D objects, keeping the results: returns one id table per slice, ``ids[k]``
    the 3D id of record k - 1 (``ids[0]`` = 0), so that a caller paints any selection of the
    records with 3D ids (``ids[result.paint()]``).  The links are those of
    :func:`link_slices` on the painted slices (smaller masks on top); a mask wholly covered
    there gets an id of its own after the others.  Yields Progress per slice."""
    linker = SliceLinker(check_min_iou(min_iou))
    tables: list[np.ndarray] = []
    previous = None
    for z, result in enumerate(results):
        painted = result.paint(dtype=LABEL_DTYPE)
        linked = linker.push(painted)
        if linked is not None:
            tables.append(_ids_of(previous, linked, len(results[z - 1])))
        previous = painted
        yield Progress(z + 1, len(results) + 1, f"linking slice {z + 1}/{len(results)}")
    if previous is not None:
        tables.append(_ids_of(previous, linker.finish(), len(results[-1])))
    count = linker.count
    for ids in tables:  # masks hidden under smaller ones: objects of their own
        hidden = np.flatnonzero(ids[1:] == 0) + 1
        ids[hidden] = np.arange(count + 1, count + 1 + hidden.size)
        count += hidden.size
    yield Progress(1, 1, f"{count} objects in {len(results)} slices")
    return tables


def _ids_of(painted: np.ndarray, linked: np.ndarray, n: int) -> np.ndarray:
    ids = np.zeros(n + 1, np.int64)
    ids[painted.ravel()] = linked.ravel()
    ids[0] = 0
    return ids

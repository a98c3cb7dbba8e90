"""A propagation of the Segment Anything dock, from the panel's settings to the labels written.

:func:`prepare` checks what a run needs (a stack, a promptable model, a Labels layer of the
image's shape, the object on the shown slice, a range through it) and makes the engine job
(:func:`napari_segany.engine.propagation.iter_propagate_stack`) on the dock's image, model
and embedding cache; :func:`label_writes` gives the writes of its result, which the panel
hands to the Labels layer as **one undo step** (computed in the worker, written in short
steps inside one ``UndoStep``).  A cancelled or failed run writes nothing.

The object: the id chosen in *Object*, or (0, the default) the last id committed or painted
into the Labels layer, else the largest id on the shown slice; its mask on the shown slice is
the seed.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ...engine.errors import SegAnyError
from ...engine.propagation import StopRules, iter_propagate_stack
from ...models.registry import PROMPTABLE
from ..shared.workers import WorkerFailure
from .propagation_axes import slice_stack, steps


@dataclass(frozen=True)
class Settings:
    """What the panel's controls ask for."""

    axis: int
    direction: str
    first: int  # slice range along the axis, inclusive
    last: int
    rules: StopRules
    object_id: int  # 0: the last committed
    preserve: bool


@dataclass(frozen=True)
class PropagationRun:
    """A prepared propagation: the engine job, the Labels layer to write and the object id,
    the image it reads and the shape both had when it started, and its cancel switch."""

    job: object
    layer: object
    value: int
    preserve: bool
    image: object
    shape: tuple
    cancel: threading.Event
    axis: int
    steps: float
    rules: StopRules


def check_ready(host) -> None:
    """SegAnyError saying what is missing before anything can be propagated."""
    if host.source is None:
        raise SegAnyError("No image: pick one in the widget first.")
    if host.predictor is None:
        raise SegAnyError("Load a model first.")
    if host.predictor.spec.task != PROMPTABLE:
        raise SegAnyError(f"{host.predictor.spec.name} has no prompt decoder: load a SAM-family "
                          "model (e.g. mobile_sam) to propagate.")
    if host.writer is None or host.writer.layer is None:
        raise SegAnyError("No Labels layer to read the object from and write into.")
    if host.source.n_leading < 1:
        raise SegAnyError("The image is 2D: propagation needs a z-stack or a time series.")


def prepare(host, settings: Settings, last_written_id: int) -> PropagationRun:
    """The run of ``settings`` from the shown slice of the host's image (SegAnyError: why not)."""
    check_ready(host)
    source, layer, axis = host.source, host.writer.layer, settings.axis
    if tuple(layer.data.shape) != source.spatial_shape:
        raise SegAnyError(f"The Labels layer {layer.name!r} has shape {tuple(layer.data.shape)}"
                          f", the image {source.spatial_shape}: pick a Labels layer of the "
                          "image's shape in the widget.")
    index = source.index_from_world(host.viewer.dims.point)
    value = object_id(layer, index, settings.object_id, last_written_id)
    seed = np.asarray(layer.data[index]) == value
    if not seed.any():
        raise SegAnyError(f"Object {value} is not on the shown slice {index}: go to a slice "
                          "where it is, or set its id in 'Object'.")
    if not settings.first <= index[axis] <= settings.last:
        raise SegAnyError(f"The range (slices {settings.first}–{settings.last}) must include "
                          f"the shown slice {index[axis]}.")
    cancel = threading.Event()
    spacing = steps(source, axis)
    job = iter_propagate_stack(
        slice_stack(source, axis, index), seed, index[axis], host.predictor.model,
        settings.direction, stop_at=(settings.first, settings.last), steps=spacing,
        rules=settings.rules, cache=host.cache, cancel=cancel,
        meta=dict(axis=axis, position=index))
    return PropagationRun(job, layer, value, settings.preserve, source.layer,
                          tuple(layer.data.shape), cancel, axis, spacing, settings.rules)


def object_id(layer, index, chosen: int, last_written_id: int) -> int:
    """The id to propagate: ``chosen``, else the last written one on the slice, else the
    largest (ids grow with each commit: the largest is the newest)."""
    if chosen:
        return int(chosen)
    plane = np.asarray(layer.data[index])
    if last_written_id and (plane == last_written_id).any():
        return last_written_id
    if plane.any():
        return int(plane.max())
    raise SegAnyError("No committed object on the shown slice: commit one (C), or set "
                      "its id in 'Object'.")


def label_writes(result, run: PropagationRun):
    """(coords, values) that put the result into the run's Labels layer with its object id."""
    return result.label_changes(run.layer.data, run.value, preserve=run.preserve)


def job_and_writes(run: PropagationRun):
    """(In a worker.) The engine job, then the label writes of its result: (result, writes);
    computed here, not on the main thread, which only writes them (in steps)."""
    result = yield from guarded(run.job)
    return result, label_writes(result, run)


def guarded(job):
    """The engine job as a worker generator (superqt would swallow a RuntimeError)."""
    try:
        return (yield from job)
    except RuntimeError as exc:
        raise WorkerFailure(f"The propagation failed: {exc}") from exc

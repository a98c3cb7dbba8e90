"""A propagation of the Segment Anything dock, from the panel's settings to the labels written.

:func:`prepare` checks what a run needs (a stack, a promptable model, a Labels layer of the
image's shape, the object on the shown slice, a range through it) and makes the engine job
(:func:`napari_segany.engine.propagation.iter_propagate_stack`) on the dock's image, model
and embedding cache; :meth:`PropagationRun.writes` gives the writes of its result, which the
panel hands to the Labels layer as **one undo step** (computed in the worker, written in
short steps inside one ``UndoStep``).  A cancelled or failed run writes nothing.
The SAM 2 memory method (every object of the slice) is :mod:`.memory_run`; both runs offer
the panel the same methods (``start_text``, ``writes``, ``outcome``, ``finished``).

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
from .propagation_words import stop_lines

SLICES, MEMORY = "slices", "memory"  # the methods: one object slice by slice; SAM 2 memory


@dataclass(frozen=True)
class Settings:
    """What the panel's controls ask for."""

    axis: int
    direction: str
    first: int  # slice range along the axis, inclusive
    last: int
    rules: StopRules
    object_id: int  # 0: the last committed (slices); the selected label (memory corrections)
    preserve: bool
    method: str = SLICES


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

    @property
    def start_text(self) -> str:
        return f"Propagating object {self.value}…"

    def writes(self, result):
        """(coords, values) that put the result into the Labels layer with the object's id."""
        return result.label_changes(self.layer.data, self.value, preserve=self.preserve)

    def outcome(self, result, axis: str) -> tuple[str, str]:
        """(the panel's outcome lines, the notification) once written; ``axis``: its name."""
        n = len(result.indices) - 1
        lines = stop_lines(result, self.rules, self.steps, axis)
        return ("\n".join([f"Object {self.value}: {n} more slice(s).", *lines]),
                f"Propagated object {self.value} to {n} more slice(s) of {self.layer.name!r}.")

    def finished(self, result, host, written: bool) -> None:
        """Nothing to keep after a slice-by-slice run."""


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
    check_labels(host)
    source, layer, axis = host.source, host.writer.layer, settings.axis
    index = source.index_from_world(host.viewer.dims.point)
    value = object_id(layer, index, settings.object_id, last_written_id)
    seed = np.asarray(layer.data[index]) == value
    if not seed.any():
        raise SegAnyError(f"Object {value} is not on the shown slice {index}: go to a slice "
                          "where it is, or set its id in 'Object'.")
    check_range(settings, index)
    cancel = threading.Event()
    spacing = steps(source, axis)
    job = iter_propagate_stack(
        slice_stack(source, axis, index), seed, index[axis], host.predictor.model,
        settings.direction, stop_at=(settings.first, settings.last), steps=spacing,
        rules=settings.rules, cache=host.cache, cancel=cancel,
        meta=dict(axis=axis, position=index))
    return PropagationRun(job, layer, value, settings.preserve, source.layer,
                          tuple(layer.data.shape), cancel, axis, spacing, settings.rules)


def check_labels(host) -> None:
    """SegAnyError unless the Labels layer has the image's (spatial) shape."""
    layer, shape = host.writer.layer, host.source.spatial_shape
    if tuple(layer.data.shape) != shape:
        raise SegAnyError(f"The Labels layer {layer.name!r} has shape {tuple(layer.data.shape)}"
                          f", the image {shape}: pick a Labels layer of the image's shape in "
                          "the widget.")


def check_range(settings: Settings, index) -> None:
    if not settings.first <= index[settings.axis] <= settings.last:
        raise SegAnyError(f"The range (slices {settings.first}–{settings.last}) must include "
                          f"the shown slice {index[settings.axis]}.")


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


def write_refusal(viewer, run) -> tuple[str, str] | None:
    """(the outcome line, the warning) when the run's Labels layer left the viewer or changed
    shape while it ran, else None."""
    layer = run.layer
    if layer not in viewer.layers:
        return ("Nothing was written.",
                f"The Labels layer {layer.name!r} is gone: nothing was written.")
    if tuple(layer.data.shape) != run.shape:
        return ("The Labels layer changed shape; nothing was written.",
                f"The data of {layer.name!r} was replaced by an array of shape "
                f"{tuple(layer.data.shape)} during the propagation (it was {run.shape}): "
                "nothing was written. Propagate again.")
    return None


def job_and_writes(run: PropagationRun):
    """(In a worker.) The engine job, then the label writes of its result: (result, writes);
    computed here, not on the main thread, which only writes them (in steps)."""
    result = yield from guarded(run.job)
    if tuple(run.layer.data.shape) != run.shape:  # replaced meanwhile: refused when done
        return result, None
    return result, run.writes(result)


def guarded(job):
    """The engine job as a worker generator (superqt would swallow a RuntimeError)."""
    try:
        return (yield from job)
    except RuntimeError as exc:
        raise WorkerFailure(f"The propagation failed: {exc}") from exc

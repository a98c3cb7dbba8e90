"""The "SAM 2 memory" method of the Propagate panel: every object of the shown Labels slice
followed through z or t by SAM 2's memory, then corrected by clicks on any slice.

Two kinds of run, chosen by what the user did (:func:`plan`):

* **seed**: no memory yet for this image, axis and model, or no clicks on the shown slice:
  a new :class:`~napari_segany.engine.propagation.MemorySession` on the slices along the
  axis, seeded with every object (id) of the shown Labels slice, then propagated;
* **correction**: a memory exists and the shown slice holds points (and at most one box) of
  the dock's prompt layers: they are added to one object (the id in *Object*, else the
  Labels layer's selected label) on that slice, and every object is propagated again from
  the seed slice.  The clicks are then removed from the prompt layer; the memory keeps them,
  and later clicks on the same slice and object add to them.

The memory lives in the image's :class:`~.image_session.ImageSession` (``memory``) after a
run succeeded; a cancelled or failed run writes nothing, and a new memory it made is freed.
Results go into the Labels layer with one id per object, as one undo step (the panel).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from ...engine.errors import SegAnyError
from ...engine.progress import Progress
from ...engine.propagation import MemorySession, is_memory_model
from . import propagation_run as runs
from .propagation_axes import axis_labels, dock_to_rgb

SAM2_MODELS = "sam2.1_hiera_t (fastest), sam2.1_hiera_s, sam2.1_hiera_b+ or sam2.1_hiera_l"


@dataclass
class Memory:
    """A SAM 2 memory kept for corrections: its session, what it was made on (``key``), the
    Labels layer it writes, and every click given so far per (slice, object)."""

    session: MemorySession
    key: tuple
    labels: object
    clicks: dict = field(default_factory=dict)  # (frame, obj) -> (xy, labels, box)

    def close(self) -> None:
        self.session.close()


@dataclass(frozen=True)
class Plan:
    """What a run will do: seed a new memory with ``ids``, or correct ``obj`` in ``memory``."""

    index: tuple  # the shown slice (one index per leading axis)
    frame: int  # its index along the axis
    ids: tuple[int, ...]
    memory: Memory | None = None
    obj: int = 0
    clicks: tuple = ()  # (xy, labels, box) of the corrected object on the frame, old + new
    new_clicks: int = 0
    unused_clicks: int = 0  # clicks on the shown slice a seed run does not use


class DockFrames:
    """The slices of the dock's image as the uint8 RGB its model sees, read one at a time
    (shape (*spatial, 3)); reads the data array of the run's start, in the worker."""

    def __init__(self, source) -> None:
        self.source, self.data, self.to_rgb = source, source.layer.data, dock_to_rgb(source)
        self.shape = (*source.spatial_shape, 3)
        self.dtype = np.dtype(np.uint8)

    def __getitem__(self, where) -> np.ndarray:
        return self.to_rgb(self.source.read(tuple(where), self.data))


def memory_key(host, axis: int, index: tuple) -> tuple:
    """What a memory depends on: the image's data and intensity mapping, the model, the axis
    and the position on the other leading axes."""
    source = host.source
    others = tuple(v for i, v in enumerate(index) if i != axis)
    return (id(source.layer.data), source.normalisation(), source.channel_first,
            source.channels, id(host.predictor.model), axis, others)


def check_model(host) -> None:
    model = host.predictor.model
    if not is_memory_model(model):
        raise SegAnyError(f"SAM 2 memory needs a SAM 2 model: load {SAM2_MODELS} under Model "
                          f"({host.predictor.spec.name} is loaded), or choose 'Slice by slice'.")


def plan(host, settings: runs.Settings) -> Plan:
    """The run Propagate would start now (SegAnyError: what is missing, in words)."""
    runs.check_ready(host)
    check_model(host)
    runs.check_labels(host)
    session, source, layer = host.image_session, host.source, host.writer.layer
    index = source.index_from_world(host.viewer.dims.point)
    runs.check_range(settings, index)
    frame = index[settings.axis]
    memory = session.memory
    if memory is not None and (memory.key != memory_key(host, settings.axis, index)
                               or memory.labels != layer):  # == : proxies
        memory = None
    xy, labels, boxes = _prompts(session, index)
    if memory is not None and (len(xy) or boxes):
        if len(boxes) > 1:
            raise SegAnyError(f"{len(boxes)} boxes on this slice: a correction takes one box "
                              "(and any number of points). Delete the others.")
        start = memory.session.seed_index
        if not settings.first <= start <= settings.last:
            raise SegAnyError(f"The range (slices {settings.first}–{settings.last}) must include "
                              f"slice {start}, where the memory started, to correct it.")
        obj = int(settings.object_id or layer.selected_label)
        old_xy, old_labels, old_box = memory.clicks.get((frame, obj), (np.zeros((0, 2)), (), None))
        clicks = (np.concatenate([old_xy, xy]), np.concatenate([old_labels, labels]).astype(int),
                  boxes[0] if boxes else old_box)
        return Plan(index, frame, tuple(memory.session.obj_ids), memory, obj, clicks,
                    len(xy) + len(boxes))
    ids = tuple(int(i) for i in np.unique(np.asarray(layer.data[index])) if i > 0)
    if not ids:
        raise SegAnyError("No object on this slice: commit objects here (C) or paint them, "
                          "then propagate them all with SAM 2's memory.")
    return Plan(index, frame, ids, unused_clicks=len(xy) + len(boxes))


def _prompts(session, index):
    if session.prompts.points is None or session.prompts.boxes is None:
        return np.zeros((0, 2)), np.zeros(0, int), []
    return session.prompts.prompts_on(session.source, index)


def readiness(host, settings: runs.Settings) -> tuple[bool, str]:
    """(whether Propagate can start, what it would do or what it needs), in words."""
    try:
        chosen = plan(host, settings)
    except SegAnyError as exc:
        return False, str(exc)
    names = axis_labels(host.source)
    name = names[settings.axis]
    along = (f"along {name} (slices {settings.first}–{settings.last}) with SAM 2's memory")
    kept = [f"{names[i]} stays at {chosen.index[i]}" for i in range(host.source.n_leading)
            if i != settings.axis]
    tail = f"; {', '.join(kept)}." if kept else "."
    if chosen.memory is not None:
        verb = "Corrects" if chosen.obj in chosen.ids else "Adds"
        return True, (f"{verb} object {chosen.obj} on {name} = {chosen.frame} with "
                      f"{chosen.new_clicks} click(s) (its id: 'Object', else the Labels layer's "
                      f"selected label), then propagates {_objects(chosen.ids)} again {along}"
                      + tail)
    text = (f"Propagates {_objects(chosen.ids)} of this slice ({name} = {chosen.frame}) {along}"
            f"{tail} Then click points on any slice to correct an object and propagate again.")
    if host.image_session.memory is not None:
        text = "Starts a new memory from this slice. " + text
    if chosen.unused_clicks:
        text += " The clicks on this slice are not used: commit them first (C)."
    return True, text


def _objects(ids) -> str:
    return f"object {ids[0]}" if len(ids) == 1 else "objects " + ", ".join(map(str, ids))


def prepare(host, settings: runs.Settings) -> MemoryRun:
    """The run of ``settings`` from the shown slice (SegAnyError: why not)."""
    chosen = plan(host, settings)
    layer, cancel = host.writer.layer, threading.Event()
    seed = None
    if chosen.memory is None:  # the objects as they are now: the user may paint meanwhile
        seed = np.asarray(layer.data[chosen.index]).copy()
    job = _job(chosen, seed, host, settings, cancel)
    return MemoryRun(job, layer, settings.preserve, host.source.layer, tuple(layer.data.shape),
                     cancel, settings.axis, chosen, memory_key(host, settings.axis, chosen.index),
                     host.image_session)


def _job(chosen: Plan, seed, host, settings: runs.Settings, cancel: threading.Event):
    """The worker's job: a new memory seeded with the slice's objects, or a correction, then
    every object propagated over the range (a new memory is freed if it fails)."""
    memory, model = chosen.memory, host.predictor.model
    frames = DockFrames(host.source) if memory is None else None  # read here, in the GUI thread

    def job():
        yield Progress(0, 1, "SAM 2 memory: the prompted slice")
        session = memory.session if memory is not None else MemorySession(
            frames, model, settings.axis, chosen.index, rgb=True)
        try:
            if memory is None:
                session.seed(seed)
            else:
                xy, labels, box = chosen.clicks
                session.add_points(chosen.frame, chosen.obj, xy if len(xy) else None,
                                   labels if len(xy) else None, box, clear_old_points=True)
            result = yield from session.iter_propagate(
                settings.direction, start=session.seed_index,
                stop_at=(settings.first, settings.last), cancel=cancel)
        except BaseException:
            if memory is None:
                session.close()
            raise
        result.session = session
        return result

    return job()


@dataclass(frozen=True)
class MemoryRun:
    """A prepared SAM 2 memory run (the panel's side of it: see ``runs.PropagationRun``)."""

    job: object
    layer: object
    preserve: bool
    image: object
    shape: tuple
    cancel: threading.Event
    axis: int
    plan: Plan
    key: tuple
    image_session: object

    @property
    def start_text(self) -> str:
        if self.plan.memory is None:
            return f"SAM 2 memory: propagating {_objects(self.plan.ids)}…"
        return f"SAM 2 memory: object {self.plan.obj} corrected, propagating again…"

    def writes(self, result):
        """Every visited slice but the seed slice, one id per object (others preserved)."""
        return result.label_changes(self.layer.data, preserve=self.preserve)

    def outcome(self, result, axis: str) -> tuple[str, str]:
        frames, chosen = result.frames, self.plan
        span = f"{axis} = {frames[0]}–{frames[-1]}" if frames else "none"
        head = f"SAM 2 memory: {_objects(result.obj_ids)} on {len(frames)} slice(s) ({span})"
        if chosen.memory is not None:
            head += f"; object {chosen.obj} corrected at {axis} = {chosen.frame}"
        lines = [head + "."]
        for obj, track in result.tracks.items():
            missing = [r.index for r in track.reports if not r.kept]
            if missing:
                lines.append(f"Object {obj}: not found on {len(missing)} slice(s) "
                             f"({axis} = {', '.join(map(str, missing[:8]))}"
                             f"{'…' if len(missing) > 8 else ''}).")
        lines.append("To correct an object: click points on any slice (its id: 'Object', else "
                     "the Labels layer's selected label), then Propagate again.")
        return "\n".join(lines), (f"SAM 2 memory: wrote {_objects(result.obj_ids)} on "
                                   f"{len(frames)} slice(s) of {self.layer.name!r}.")

    def finished(self, result, host, written: bool) -> None:
        """Keep the memory for corrections (a new one replaces the image's last one); the
        clicks of a correction leave the prompt layer (the memory has them)."""
        chosen, session = self.plan, self.image_session
        if chosen.memory is None:
            if not written:
                result.session.close()
                return
            if session.memory is not None:
                session.memory.close()
            session.memory = Memory(result.session, self.key, self.layer)
            return
        if written:
            chosen.memory.clicks[(chosen.frame, chosen.obj)] = chosen.clicks
            if session is host.image_session and session.index == chosen.index:
                host.prompt_preview.reset_objects(session, clear_prompts=True)
            else:
                session.prompts.clear_slice(session.source, chosen.index)

"""SAM 2 memory propagation of every object of a label slice through a z-stack or a time
series, with corrections on any frame followed by another propagation.

:class:`MemorySession` holds one :class:`~..video.VideoPredictor` session on the slices of
a volume along one axis (the *frames*; frame ``i`` is index ``i`` along that axis): seed it
with a label slice (one object per id, ``add_new_mask`` each), run
:meth:`MemorySession.iter_propagate` (a job: yields Progress per frame, cancel between frames,
returns a :class:`~.memory_result.MemoryPropagationResult` whose ``label_changes`` go into a
Labels layer as one undo step), correct with :meth:`MemorySession.add_points` /
:meth:`MemorySession.add_mask` on any frame, and propagate again.
:func:`iter_propagate_memory` / :func:`propagate_memory` are the one-shot forms.

Shapes and axes (napari's order, as :func:`.walk.iter_propagate`): ``volume`` is (..., Y, X)
with one or two leading axes (ZYX, TYX, TZYX), plus a trailing RGB(A) axis when ``rgb``;
``axis`` is the leading axis to walk along; ``index`` (an int along ``axis``, or one index
per leading axis) is the seed frame and fixes the axes not walked along.  Correction points
are **x, y pixels of the frame** (SAM convention; napari's row/col convert with
``rc_to_xy``); masks and labels are (Y, X).
"""
from __future__ import annotations

import threading
from typing import Callable, Mapping

import numpy as np

from ...models.sam2.sam2 import Sam2
from ..errors import Cancelled, CheckpointError, PromptError
from ..interactive import crop_to_bbox
from ..progress import Job, Progress, run
from ..video import VideoPredictor, frame_labels
from ..video.prompts import check_frame
from .memory_result import MemoryPropagationResult
from .result import OK, SEED, SKIPPED, PropagationResult, SliceReport
from .walk import _check_axis, walk_range, _seed_position, _spatial_shape


class AxisFrames:
    """The (T, Y, X[, C]) frames of ``volume`` along ``axis`` through ``position``, read one
    at a time (what :class:`~..video.frames.FrameSource` takes; nothing is copied)."""

    def __init__(self, volume, axis: int, position: tuple[int, ...], rgb: bool) -> None:
        shape = tuple(np.shape(volume))
        lead = len(shape) - 2 - int(rgb)
        self.volume, self.axis, self.position = volume, axis, position
        self.shape = (shape[axis], *shape[lead:])
        self.dtype = np.dtype(volume.dtype)

    def __getitem__(self, t: int) -> np.ndarray:
        where = list(self.position)
        where[self.axis] = int(t)
        return np.asarray(self.volume[tuple(where)])


class MemorySession:
    """SAM 2 memory propagation on the frames of ``volume`` along ``axis`` (see the module).

    model: a loaded SAM 2 model (``load_model('sam2.1_hiera_t')``) or its registry name.
    contrast_limits: (lo, hi) mapping every frame to uint8 (the layer's); None: the stack's
        0.5/99.5 percentiles (one rule for all frames).
    video_options: ``VideoPredictor`` settings (``ram_frames``, ``spill_dir``,
        ``feature_cache_frames``, ``add_all_frames_to_correct_as_cond``).
    """

    def __init__(self, volume, model, axis: int = 0, index=0, *, rgb: bool = False,
                 contrast_limits=None, **video_options) -> None:
        spatial = _spatial_shape(volume, rgb)
        self.axis = _check_axis(axis, len(spatial))
        self.position = _seed_position(index, self.axis, spatial)
        self.shape = tuple(int(n) for n in spatial[-2:])
        self.length = int(spatial[self.axis])
        self.video = VideoPredictor(_sam2_model(model), **video_options)
        self.state = self.video.init_state(AxisFrames(volume, self.axis, self.position, rgb),
                                           contrast_limits)
        self.seed_index = self.position[self.axis]
        self._mask_frames: dict[int, set[int]] = {}  # obj_id -> frames prompted with a mask

    @property
    def obj_ids(self) -> list[int]:
        return self.state.obj_ids

    # --- prompts ------------------------------------------------------------------------
    def seed(self, seed, index: int | None = None) -> list[int]:
        """Prompt every object of ``seed`` on frame ``index`` (default: the session's seed
        frame) with its mask; returns their ids.  ``seed``: a (Y, X) integer label slice
        (one object per non-zero id), a {id: (Y, X) mask} mapping, or one (Y, X) bool mask
        (object 1)."""
        index = self.seed_index if index is None else check_frame(index, self.length)
        masks = _seed_masks(seed, self.shape)
        for obj_id, mask in masks.items():
            self.add_mask(index, obj_id, mask)
        self.seed_index = index
        return list(masks)

    def add_mask(self, frame: int, obj_id: int, mask) -> np.ndarray:
        """Object ``obj_id`` is ``mask`` (Y, X) on ``frame``; returns the frame's (Y, X) labels."""
        _, ids, logits = self.video.add_new_mask(self.state, frame, obj_id, mask)
        self._mask_frames.setdefault(int(obj_id), set()).add(int(frame))
        return frame_labels(logits, ids)

    def add_points(self, frame: int, obj_id: int, points=None, labels=None, box=None,
                   clear_old_points: bool = True) -> np.ndarray:
        """A correction (or a new object): x, y ``points`` with ``labels`` (1 foreground, 0
        background) and/or a ``box`` (x0, y0, x1, y1) on ``frame``; it becomes a
        conditioning frame of the object.  Returns the frame's (Y, X) labels."""
        _, ids, logits = self.video.add_new_points_or_box(self.state, frame, obj_id, points,
                                                          labels, box, clear_old_points)
        self._mask_frames.get(int(obj_id), set()).discard(int(frame))
        return frame_labels(logits, ids)

    # --- propagation ----------------------------------------------------------------------
    def iter_propagate(self, direction: str = "both", start: int | None = None,
                       stop_at: tuple[int, int] | None = None,
                       cancel: threading.Event | None = None) -> Job[MemoryPropagationResult]:
        """Track every object from frame ``start`` (default: the seed frame) "forward"
        (increasing index), "backward" or "both" (forward first), within ``stop_at``
        (first, last) inclusive.  Yields Progress after every frame; a ``cancel`` or closing
        the job stops it between frames (``Cancelled``; the frames tracked so far stay in
        the session's memory).  Checks the arguments at once, then returns the generator."""
        if not self.obj_ids:
            raise PromptError("Seed the session with a label slice or a mask first.")
        start = self.seed_index if start is None else check_frame(start, self.length)
        passes = _passes(start, self.length, direction, stop_at)
        return self._propagate(passes, start, cancel or threading.Event())

    def propagate(self, callback: Callable[[Progress], object] | None = None,
                  **kwargs) -> MemoryPropagationResult:
        """Blocking form of :meth:`iter_propagate`; ``callback`` may return False to cancel."""
        return run(self.iter_propagate(**kwargs), callback)

    def _propagate(self, passes, start: int, cancel) -> Job[MemoryPropagationResult]:
        result = self._new_result(start)
        # the official reverse pass from frame 0 visits nothing, not even frame 0
        total = sum(count + 1 for reverse, count, _ in passes if not (reverse and start == 0))
        step, seen = 0, set()
        yield Progress(0, total, "SAM 2 memory propagation")
        for reverse, count, reason in passes:
            direction = "backward" if reverse else "forward"
            for frame, ids, logits in self.video.propagate_in_video(self.state, start, count,
                                                                    reverse):
                if cancel.is_set():
                    raise Cancelled("The SAM 2 propagation was cancelled; nothing was written.")
                if frame not in seen:  # the start frame is seen by both passes
                    seen.add(frame)
                    self._record(result, frame, ids, logits, direction)
                step += 1
                yield Progress(step, total, f"SAM 2 memory: frame {frame} ({direction})")
            result.stops[direction] = reason
        result.frames = sorted(seen)
        return result

    def _new_result(self, start: int) -> MemoryPropagationResult:
        meta = dict(seed=start, shape=self.shape, length=self.length, axis=self.axis,
                    position=self.position)
        tracks = {obj_id: PropagationResult(**meta) for obj_id in self.obj_ids}
        return MemoryPropagationResult(list(self.obj_ids), tracks=tracks, **meta)

    def _record(self, result: MemoryPropagationResult, frame: int, ids, logits,
                direction: str) -> None:
        """The frame's masks (overlaps resolved) as one report per object."""
        labels = frame_labels(logits, ids)
        for obj_id in ids:
            bbox, crop = crop_to_bbox(labels == obj_id)
            area = int(crop.sum())
            status = SEED if frame in self._mask_frames.get(obj_id, ()) else (OK if area else SKIPPED)
            score = self._presence(obj_id, frame)
            result.tracks[obj_id].add(SliceReport(frame, direction, status, score, area,
                                                  float("nan"), bbox, crop))

    def _presence(self, obj_id: int, frame: int) -> float:
        """The object-presence probability SAM 2 gave the object on ``frame``."""
        out = self.state.bank.tracks[obj_id].latest(frame)
        return float(1 / (1 + np.exp(-float(out.object_score_logits.flatten()[0]))))

    def close(self) -> None:
        """Free the session's features, memories and spilled files."""
        self.state.close()


def iter_propagate_memory(volume, seed, index, model, axis: int = 0, direction: str = "both",
                          *, stop_at: tuple[int, int] | None = None, rgb: bool = False,
                          contrast_limits=None, cancel: threading.Event | None = None,
                          **video_options) -> Job[MemoryPropagationResult]:
    """Every object of ``seed`` (a (Y, X) label slice, {id: mask} or one bool mask) on
    slice ``index`` tracked through ``volume`` along ``axis`` with SAM 2's memory: the job
    of :meth:`MemorySession.iter_propagate` on a new session (``result.session`` keeps it
    for corrections).  Arguments as :class:`MemorySession` and ``iter_propagate``."""
    session = MemorySession(volume, model, axis, index, rgb=rgb, contrast_limits=contrast_limits,
                            **video_options)
    session.seed(seed)
    job = session.iter_propagate(direction, stop_at=stop_at, cancel=cancel)
    return _keeping(session, job)


def _keeping(session: MemorySession, job) -> Job[MemoryPropagationResult]:
    """``job``'s result with ``result.session`` set (corrections, another propagation)."""
    result = yield from job
    result.session = session
    return result


def propagate_memory(volume, seed, index, model, axis: int = 0, direction: str = "both", *,
                     callback: Callable[[Progress], object] | None = None,
                     **options) -> MemoryPropagationResult:
    """Blocking form of :func:`iter_propagate_memory`; ``callback`` may return False to cancel."""
    return run(iter_propagate_memory(volume, seed, index, model, axis, direction, **options),
               callback)


# --- arguments --------------------------------------------------------------------------------
def is_memory_model(model) -> bool:
    """Whether ``model`` (a loaded model) can propagate with SAM 2's memory."""
    return isinstance(model, Sam2)


def _sam2_model(model) -> Sam2:
    if isinstance(model, str):
        from ..weights import load_model

        model = load_model(model)
    if not isinstance(model, Sam2):
        name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
        raise CheckpointError(
            f"SAM 2 memory propagation needs a SAM 2 model (sam2.1_hiera_t, _s, _b+, _l); "
            f"{name} is not one. Use propagate() (slice by slice) with it.")
    return model


def _seed_masks(seed, shape: tuple[int, int]) -> dict[int, np.ndarray]:
    """{obj_id: (Y, X) bool} from a label slice, a mapping or one bool mask."""
    if isinstance(seed, Mapping):
        masks = {int(k): np.asarray(v) != 0 for k, v in seed.items()}
    else:
        plane = np.asarray(seed)
        if plane.dtype == bool:
            masks = {1: plane}
        elif plane.dtype.kind in "iu":
            masks = {int(i): plane == i for i in np.unique(plane) if i > 0}
        else:
            raise PromptError(f"The seed must be a label slice of integers, a bool mask or "
                              f"{{id: mask}}; got {plane.dtype}.")
    for obj_id, mask in masks.items():
        if mask.shape != shape:
            raise PromptError(f"The seed of object {obj_id} has shape {mask.shape}; the "
                              f"frames are {shape} (Y, X).")
    if not masks or not any(m.any() for m in masks.values()):
        raise PromptError("The seed slice holds no object: paint or commit one there first.")
    return masks


def _passes(start: int, length: int, direction: str, stop_at) -> list[tuple[bool, int, str]]:
    """[(reverse, frames to track after ``start``, why it ends if nothing stops it)]."""
    first, last = walk_range(start, length, direction, stop_at, "the start frame")
    forward = (False, last - start, "end" if last == length - 1 else "range")
    backward = (True, start - first, "end" if first == 0 else "range")
    return {"both": [forward, backward], "forward": [forward], "backward": [backward]}[direction]

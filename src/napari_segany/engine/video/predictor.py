"""``VideoPredictor``: SAM 2's video predictor (sam2 1.1.0 ``SAM2VideoPredictor``) on numpy
stacks, for time series and z-stacks alike (the "frames" are slices along the first axis).

Coordinates are **x, y pixels of a frame** (SAM convention; napari's row/col points
convert with ``napari_segany.rc_to_xy``); boxes x0, y0, x1, y1.  Mask logits come back at
frame resolution as float32 numpy arrays of shape (n_obj, 1, H, W), rows in the order of
``obj_ids`` (the order the objects were first prompted).

Semantics of the official predictor: a prompted frame that was never tracked is a
*conditioning* frame (segmented without memory, as an image); propagation starts at the
earliest conditioning frame and tracks each object independently with a memory of its
conditioning frames, its 6 previous frames (``num_maskmem`` = 7) and up to 16 object
pointers.  Differences, on purpose: corrections on tracked frames become conditioning
frames by default (``add_all_frames_to_correct_as_cond=True``; the official default False
discards them at the next propagation), objects may be added after a propagation, and
there is no hole filling (the official CPU install skips it too: no CUDA extension).
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...models.sam2.sam2 import Sam2
from ...models.sam2.tracking import MASK_LOGIT_LIMIT, NO_OBJ_SCORE
from ..errors import Cancelled, PromptError
from ..progress import Job, Progress, run
from .features import FeatureCache
from .frames import FrameSource
from .inference import add_memory, run_frame
from .memory_bank import MemoryBank
from .prompts import check_frame, check_mask, check_obj_id, to_model_points
from .result import MaskCollector, VideoMasks
from .state import VideoState

Result = tuple[int, list[int], np.ndarray]  # (frame_idx, obj_ids, logits (n_obj, 1, H, W))


class VideoPredictor:
    """Track objects through a stack with a SAM 2 model from ``load_model('sam2.1_hiera_*')``.

    feature_cache_frames: image features kept in RAM (about 16 MB each, recomputed on a miss);
    ram_frames: tracked frames per session whose memories stay in RAM (about 0.75 MB per
    frame and object), the older ones go to files in ``spill_dir`` (default: the system's
    temporary folder; None keeps everything in RAM).
    """

    def __init__(self, model: torch.nn.Module, *, add_all_frames_to_correct_as_cond: bool = True,
                 feature_cache_frames: int = 2, ram_frames: int | None = 32,
                 spill_dir: str | Path | None = None) -> None:
        if not isinstance(model, Sam2):
            raise ValueError("VideoPredictor needs a SAM 2 model, e.g. "
                             "napari_segany.load_model('sam2.1_hiera_t').")
        self.model = model.eval()
        self.spec = getattr(model, "spec", None)
        self.add_all_frames_to_correct_as_cond = add_all_frames_to_correct_as_cond
        self.feature_cache_frames = feature_cache_frames
        self.ram_frames = ram_frames
        self.spill_dir = spill_dir

    # --- session ---------------------------------------------------------------------------
    def init_state(self, frames, contrast_limits: tuple[float, float] | None = None) -> VideoState:
        """Start a session on ``frames`` (T, H, W) or (T, H, W, C), any dtype (kept by
        reference; non-uint8 stacks are stretched by ``contrast_limits`` or the stack's
        0.5/99.5 percentiles)."""
        mean, std = self._normalisation()
        source = FrameSource(frames, self.model.image_size, mean, std, contrast_limits)
        return VideoState(source, FeatureCache(self.model, source, self.feature_cache_frames),
                          MemoryBank(self.ram_frames, self.spill_dir))

    def reset_state(self, state: VideoState) -> None:
        """Forget every object, prompt and result of the session (frames are kept)."""
        state.bank.clear()

    def _normalisation(self):
        if self.spec is not None:
            return self.spec.pixel_mean, self.spec.pixel_std
        from ...models.registry import IMAGENET_MEAN_01, IMAGENET_STD_01

        return IMAGENET_MEAN_01, IMAGENET_STD_01

    # --- prompts ----------------------------------------------------------------------------
    def add_new_points_or_box(self, state: VideoState, frame_idx: int, obj_id: int, points=None,
                              labels=None, box=None, clear_old_points: bool = True) -> Result:
        """Click (x, y) ``points`` with ``labels`` (1 foreground, 0 background) and/or a
        ``box`` (x0, y0, x1, y1) for object ``obj_id`` on ``frame_idx``.  Returns the
        frame's logits of every object."""
        frame_idx = check_frame(frame_idx, state.num_frames)
        obj_id = check_obj_id(obj_id)
        coords, point_labels = to_model_points(points, labels, box, state.video_height,
                                               state.video_width, self.model.image_size)
        if box is not None and not clear_old_points:
            raise PromptError("A box must come first: add it with clear_old_points=True.")
        device = self._device()
        coords, point_labels = coords.to(device), point_labels.to(device)
        track = state.bank.track(obj_id)
        old = None if clear_old_points else track.points.get(frame_idx)
        if old is not None:
            coords = torch.cat([old[0], coords], dim=1)
            point_labels = torch.cat([old[1], point_labels], dim=1)
        points_in = (coords, point_labels)
        track.points[frame_idx] = points_in
        return self._prompt(state, frame_idx, obj_id, points=points_in)

    def add_new_mask(self, state: VideoState, frame_idx: int, obj_id: int, mask) -> Result:
        """A binary (H, W) ``mask`` of object ``obj_id`` on ``frame_idx`` (used as the
        frame's result as is; e.g. a slice of a Labels layer == obj_id)."""
        frame_idx = check_frame(frame_idx, state.num_frames)
        obj_id = check_obj_id(obj_id)
        mask = check_mask(mask, state.video_height, state.video_width).to(self._device())
        size = self.model.image_size
        if tuple(mask.shape[-2:]) != (size, size):
            mask = F.interpolate(mask, size=(size, size), mode="bilinear", align_corners=False,
                                 antialias=True)
            mask = (mask >= 0.5).float()
        state.bank.track(obj_id).points.pop(frame_idx, None)
        return self._prompt(state, frame_idx, obj_id, mask=mask)

    def _prompt(self, state: VideoState, frame_idx: int, obj_id: int, points=None,
                mask=None) -> Result:
        track = state.bank.tracks[obj_id]
        is_init = frame_idx not in track.tracked
        reverse = False if is_init else track.tracked[frame_idx]
        is_cond = is_init or self.add_all_frames_to_correct_as_cond
        prev_logits = None
        previous = track.latest(frame_idx, is_cond)
        if points is not None and previous is not None:  # new clicks refine the last mask
            previous = state.bank.load(obj_id, frame_idx, previous)
            prev_logits = previous.pred_masks.to(self._device()).clamp(
                -MASK_LOGIT_LIMIT, MASK_LOGIT_LIMIT)
        out = run_frame(self.model, state, obj_id, frame_idx, is_init_cond_frame=is_init,
                        reverse=reverse, points=points, mask=mask, prev_logits=prev_logits,
                        run_mem_encoder=False)
        track.temp[is_cond][frame_idx] = out
        return frame_idx, state.obj_ids, self._frame_logits(state, frame_idx, is_cond)

    def _frame_logits(self, state: VideoState, frame_idx: int, is_cond: bool) -> np.ndarray:
        """(n_obj, 1, H, W) logits of every object on a frame (NO_OBJ_SCORE if none yet)."""
        rows = []
        for obj_id, track in state.bank.tracks.items():
            out = track.latest(frame_idx, is_cond)
            if out is None:
                rows.append(np.full((1, 1, state.video_height, state.video_width), NO_OBJ_SCORE,
                                    np.float32))
            else:
                logits = state.bank.load(obj_id, frame_idx, out).pred_masks
                rows.append(self._to_video(state, logits.float().cpu()))
        return np.concatenate(rows, axis=0)

    @staticmethod
    def _to_video(state: VideoState, logits: torch.Tensor) -> np.ndarray:
        size = (state.video_height, state.video_width)
        if tuple(logits.shape[-2:]) != size:
            with torch.inference_mode():
                logits = F.interpolate(logits.float(), size=size, mode="bilinear",
                                       align_corners=False)
        return logits.cpu().numpy()

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    # --- propagation ------------------------------------------------------------------------
    def propagate_in_video(self, state: VideoState, start_frame_idx: int | None = None,
                           max_frame_num_to_track: int | None = None,
                           reverse: bool = False) -> Iterator[Result]:
        """Track every object from ``start_frame_idx`` (default: the earliest conditioning
        frame) forward (or backward with ``reverse``), yielding each frame's logits."""
        self._commit_prompts(state)
        order = self._frame_order(state, start_frame_idx, max_frame_num_to_track, reverse)
        obj_ids = state.obj_ids
        for frame_idx in order:
            logits = [self._track(state, obj_id, frame_idx, reverse) for obj_id in obj_ids]
            yield frame_idx, obj_ids, self._to_video(state, torch.cat(logits, dim=0))

    def _track(self, state: VideoState, obj_id: int, frame_idx: int, reverse: bool) -> torch.Tensor:
        """Track one object on one frame (or reuse its conditioning output) -> low-res logits."""
        track = state.bank.tracks[obj_id]
        if frame_idx in track.cond:
            out = track.cond[frame_idx]
        else:
            out = run_frame(self.model, state, obj_id, frame_idx, is_init_cond_frame=False,
                            reverse=reverse, run_mem_encoder=True)
            state.bank.commit(obj_id, frame_idx, out, is_cond=False)
        track.tracked[frame_idx] = reverse
        return out.pred_masks.float().cpu()

    def _commit_prompts(self, state: VideoState) -> None:
        """Encode the memories of the frames prompted since the last propagation and move
        them into the bank (the official ``propagate_in_video_preflight``)."""
        if not state.bank.tracks:
            raise PromptError("Add points, a box or a mask for at least one object first.")
        for obj_id, track in state.bank.tracks.items():
            for is_cond in (False, True):
                for frame_idx, out in track.temp[is_cond].items():
                    if out.maskmem is None:
                        add_memory(self.model, state, frame_idx, out, binarize=True)
                    state.bank.commit(obj_id, frame_idx, out, is_cond)
                track.temp[is_cond].clear()
            if not track.cond:
                raise PromptError(f"Object {obj_id} has no prompt on an untracked frame: give "
                                  "it points, a box or a mask before propagating.")

    @staticmethod
    def _frame_order(state: VideoState, start: int | None, max_frames: int | None,
                     reverse: bool) -> range:
        if start is None:
            start = min(t for track in state.bank.tracks.values() for t in track.cond)
        start = check_frame(start, state.num_frames)
        count = state.num_frames if max_frames is None else int(max_frames)
        if reverse:
            return range(start, max(start - count, 0) - 1, -1) if start > 0 else range(0)
        return range(start, min(start + count, state.num_frames - 1) + 1)

    # --- jobs -----------------------------------------------------------------------------
    def iter_propagate(self, state: VideoState, start_frame_idx: int | None = None,
                       max_frame_num_to_track: int | None = None, reverse: bool = False,
                       both_directions: bool = False,
                       cancel: threading.Event | None = None) -> Job[VideoMasks]:
        """Propagation as a job: yields :class:`Progress` after every frame and returns
        :class:`VideoMasks`.  ``both_directions``: forward from the start frame, then
        backward from it.  Closing the job or setting ``cancel`` stops it between two frames
        (``Cancelled``); the frames tracked so far stay in the session's memory bank."""
        passes = [False, True] if both_directions else [reverse]
        self._commit_prompts(state)
        orders = [self._frame_order(state, start_frame_idx, max_frame_num_to_track, r)
                  for r in passes]
        total, step = sum(len(o) for o in orders), 0
        collector = MaskCollector(state.obj_ids)
        for direction in passes:
            for frame_idx, _, logits in self.propagate_in_video(
                    state, start_frame_idx, max_frame_num_to_track, direction):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("The SAM 2 propagation was cancelled; nothing was returned.")
                collector.add(frame_idx, logits)
                step += 1
                yield Progress(step, total, f"SAM 2 propagation: frame {frame_idx}")
        return collector.result(state.video_height, state.video_width)

    def propagate(self, state: VideoState, callback=None, **kwargs) -> VideoMasks:
        """Blocking form of :meth:`iter_propagate`; ``callback(Progress)`` may return False
        to cancel (raises ``Cancelled``)."""
        return run(self.iter_propagate(state, **kwargs), callback)

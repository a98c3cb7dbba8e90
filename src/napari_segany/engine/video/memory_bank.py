"""SAM 2's memory bank: every object's outputs on every frame, and which of them feed the
memory attention of the next frame (the selection rules of sam2 1.1.0).

Objects are tracked independently (as the official predictor since 1.1.0).  Per object:
*conditioning* frames (those with the user's prompts) and *non-conditioning* frames (the
tracked ones).  A frame's output holds the low-res mask logits (1, 1, 256, 256) float32,
the spatial memory (1, 64, 64, 64) in bfloat16 (the official storage dtype, which the
results depend on), the object pointer (1, 256) and the object score (1, 1).

RAM stays bounded on long stacks: the heavy tensors (0.75 MB) of the non-conditioning
frames beyond the ``ram_frames`` most recently used ones go to a :class:`SpillStore` and
come back bit-identical when a correction or a reverse pass needs them.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .spill import SpillStore


@dataclass
class FrameOutput:
    """One object's output on one frame (tensors on the CPU or the model's device)."""

    obj_ptr: torch.Tensor
    object_score_logits: torch.Tensor
    pred_masks: torch.Tensor | None
    maskmem: torch.Tensor | None = None
    spilled: bool = False


@dataclass
class ObjectTrack:
    """Prompts and outputs of one object.  ``points``: frame -> the (model-frame) points
    of its last click prompt (a mask prompt clears them); ``temp`` holds the outputs of
    prompts given since the last propagation (keyed by is_cond), committed with their
    memory when the next propagation starts; ``tracked`` maps each tracked frame to its
    direction (True = reverse)."""

    cond: dict = field(default_factory=dict)
    non_cond: dict = field(default_factory=dict)
    temp: dict = field(default_factory=lambda: {True: {}, False: {}})
    points: dict = field(default_factory=dict)
    tracked: dict = field(default_factory=dict)

    def latest(self, frame_idx: int, is_cond: bool | None = None) -> FrameOutput | None:
        """The newest output on a frame: uncommitted (of ``is_cond`` kind, or either),
        then conditioning, then non-conditioning."""
        kinds = (True, False) if is_cond is None else (is_cond,)
        for kind in kinds:
            if frame_idx in self.temp[kind]:
                return self.temp[kind][frame_idx]
        return self.cond.get(frame_idx, self.non_cond.get(frame_idx))

    def select_memories(self, frame_idx: int, reverse: bool, num_maskmem: int
                        ) -> list[tuple[int, int]]:
        """(t_pos, frame) of the spatial memories for ``frame_idx``: every conditioning
        frame (t_pos 0, in the order they were added), then the non-conditioning frames
        num_maskmem-1 .. 1 steps before it in the tracking direction (t_pos 1 .. 6)."""
        chosen = [(0, t) for t in self.cond]
        step = 1 if reverse else -1
        for t_pos in range(1, num_maskmem):
            prev = frame_idx + step * (num_maskmem - t_pos)
            if prev in self.non_cond:
                chosen.append((t_pos, prev))
        return chosen

    def select_pointers(self, frame_idx: int, reverse: bool, num_frames: int,
                        max_ptrs: int = 16) -> tuple[list[tuple[int, FrameOutput]], int]:
        """Object pointers for ``frame_idx`` with their signed temporal distances, and the
        normaliser of those distances (min(num_frames, max_ptrs) - 1).  Conditioning frames
        count only when not in the future of the tracking direction."""
        limit = min(num_frames, max_ptrs)
        sign = -1 if reverse else 1
        chosen = [((frame_idx - t) * sign, out) for t, out in self.cond.items()
                  if (t >= frame_idx if reverse else t <= frame_idx)]
        for t_diff in range(1, limit):
            t = frame_idx + t_diff if reverse else frame_idx - t_diff
            if t < 0 or t >= num_frames:
                break
            out = self.non_cond.get(t)
            if out is not None:
                chosen.append((t_diff, out))
        return chosen, max(limit - 1, 1)


class MemoryBank:
    """The tracks of all objects (in the order they were added) and the RAM window."""

    def __init__(self, ram_frames: int | None = 32, spill_dir: str | Path | None = None) -> None:
        self.tracks: dict[int, ObjectTrack] = {}
        self.ram_frames = ram_frames
        self.spill_dir = spill_dir
        self._in_ram: OrderedDict = OrderedDict()  # (obj_id, frame) of unspilled non-cond outputs
        self._spill: SpillStore | None = None

    @property
    def obj_ids(self) -> list[int]:
        return list(self.tracks)

    def track(self, obj_id: int) -> ObjectTrack:
        """The track of ``obj_id``, created on first use."""
        return self.tracks.setdefault(obj_id, ObjectTrack())

    def commit(self, obj_id: int, frame_idx: int, out: FrameOutput, is_cond: bool) -> None:
        """Store an output with its memory; a conditioning frame replaces any tracked one."""
        track = self.tracks[obj_id]
        if is_cond:
            track.cond[frame_idx] = out
            self._forget(obj_id, frame_idx)
            track.non_cond.pop(frame_idx, None)
            return
        self._forget(obj_id, frame_idx)
        track.non_cond[frame_idx] = out
        self._in_ram[(obj_id, frame_idx)] = None
        self._enforce_window()

    def load(self, obj_id: int, frame_idx: int, out: FrameOutput) -> FrameOutput:
        """``out`` with its heavy tensors in RAM (read back if spilled); marks it recent."""
        key = (obj_id, frame_idx)
        if out.spilled:
            out.pred_masks = self._spill.get(key + ("masks",))
            out.maskmem = self._spill.get(key + ("memory",))
            out.spilled = False
        if key in self._in_ram or frame_idx in self.tracks[obj_id].non_cond:
            self._in_ram[key] = None
            self._in_ram.move_to_end(key)
            self._enforce_window()
        return out

    def clear(self) -> None:
        """Forget every object, output and spilled file."""
        self.tracks.clear()
        self._in_ram.clear()
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def spilled_frames(self) -> int:
        """How many (object, frame) outputs are on disk now."""
        return len(self._spill) // 2 if self._spill is not None else 0

    def _forget(self, obj_id: int, frame_idx: int) -> None:
        key = (obj_id, frame_idx)
        self._in_ram.pop(key, None)
        if self._spill is not None:
            self._spill.drop(key + ("masks",))
            self._spill.drop(key + ("memory",))

    def _enforce_window(self) -> None:
        if self.ram_frames is None:
            return
        while len(self._in_ram) > self.ram_frames:
            (obj_id, frame_idx), _ = self._in_ram.popitem(last=False)
            out = self.tracks[obj_id].non_cond.get(frame_idx)
            if out is None or out.spilled or out.maskmem is None:
                continue
            if self._spill is None:
                self._spill = SpillStore(self.spill_dir)
            self._spill.put((obj_id, frame_idx, "masks"), out.pred_masks.cpu())
            self._spill.put((obj_id, frame_idx, "memory"), out.maskmem.cpu())
            out.pred_masks = out.maskmem = None
            out.spilled = True

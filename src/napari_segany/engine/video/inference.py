"""One object on one frame: memory conditioning, SAM heads, memory encoding (sam2 1.1.0's
``_run_single_frame_inference`` / ``track_step`` / ``_run_memory_encoder``).

Points here are already in the model frame: (1, N, 2) x, y in S x S pixels, labels
(1, N) with 2/3 for box corners.  Masks are (1, 1, S, S) binary.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...models.sam2.sam2 import Sam2
from ...models.sam2.tracking import (
    Memory,
    encode_memory,
    mask_as_output,
    sam_heads,
    with_memory,
    without_memory,
)
from .memory_bank import FrameOutput
from .state import VideoState

#: The official configs' multimask rule: 3 candidates (best kept) for 0 or 1 prompt point.
MULTIMASK_MAX_POINTS = 1
#: Spatial memories are stored in bfloat16, as the official predictor does.
MEMORY_DTYPE = torch.bfloat16


def _conditioned_features(model: Sam2, state: VideoState, obj_id: int, frame_idx: int,
                          is_init_cond_frame: bool, reverse: bool) -> torch.Tensor:
    """(1, 256, h, w) features of ``frame_idx`` conditioned on the object's memory bank."""
    feats = state.features.get(frame_idx)
    if is_init_cond_frame:
        return without_memory(model, feats)
    bank, track = state.bank, state.bank.tracks[obj_id]
    device = feats.vision.device
    memories = []
    for t_pos, t in track.select_memories(frame_idx, reverse, model.num_maskmem):
        out = bank.load(obj_id, t, track.cond[t] if t_pos == 0 else track.non_cond[t])
        memories.append(Memory(t_pos, out.maskmem.to(device), state.memory_pos(model, t_pos)))
    pointers, max_distance = track.select_pointers(
        frame_idx, reverse, state.num_frames, model.max_obj_ptrs_in_encoder)
    return with_memory(model, feats, memories, [(d, out.obj_ptr) for d, out in pointers],
                       max_distance)


def run_frame(model: Sam2, state: VideoState, obj_id: int, frame_idx: int, *,
              is_init_cond_frame: bool, reverse: bool, points=None, mask=None,
              prev_logits: torch.Tensor | None = None, run_mem_encoder: bool) -> FrameOutput:
    """Segment one object on one frame.  ``points``: (coords (1, N, 2), labels (1, N)) or
    None; ``mask``: (1, 1, S, S) binary, used as the output as is; ``prev_logits``:
    (1, 1, S/4, S/4) earlier logits of this frame, fed back with new points."""
    feats = state.features.get(frame_idx)
    with torch.inference_mode():
        if mask is not None:
            heads = mask_as_output(model, feats, mask)
        else:
            pix = _conditioned_features(model, state, obj_id, frame_idx, is_init_cond_frame,
                                        reverse)
            coords, labels = points if points is not None else (None, None)
            num_points = 0 if labels is None else labels.shape[1]
            heads = sam_heads(model, pix, feats.high_res, coords, labels, prev_logits,
                              multimask_output=num_points <= MULTIMASK_MAX_POINTS)
        out = FrameOutput(heads.obj_ptr, heads.object_score_logits, heads.low_res_masks)
        if run_mem_encoder:
            add_memory(model, state, frame_idx, out, heads.high_res_masks,
                       binarize=points is not None)
    return out


def add_memory(model: Sam2, state: VideoState, frame_idx: int, out: FrameOutput,
               high_res_masks: torch.Tensor | None = None, binarize: bool = True) -> None:
    """Encode ``out``'s mask into its spatial memory (``out.maskmem``, bfloat16).  Without
    ``high_res_masks`` the low-res logits are upsampled (prompted frames, as the official
    predictor does when a propagation starts) and binarised when ``binarize``."""
    feats = state.features.get(frame_idx)
    with torch.inference_mode():
        if high_res_masks is None:
            size = (model.image_size, model.image_size)
            high_res_masks = F.interpolate(out.pred_masks.to(feats.vision.device), size=size,
                                           mode="bilinear", align_corners=False)
        memory, pos = encode_memory(model, feats, high_res_masks, out.object_score_logits,
                                    binarize)
    out.maskmem = memory.to(MEMORY_DTYPE)
    if state.maskmem_pos is None:
        state.maskmem_pos = pos

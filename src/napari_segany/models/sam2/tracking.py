"""The per-frame steps of SAM 2's video tracking (SAM2Base of sam2 1.1.0), as functions of
a :class:`~.sam2.Sam2` network.  Which frames feed the memory is decided by the caller
(the engine's memory bank); here is only the tensor maths.

Shapes: B objects tracked together on one frame (their image features are the frame's,
broadcast); S = 1024 model input, h = w = S/16 = 64, low-res masks S/4 = 256.  Points
are (x, y) in model-input pixels.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .position_encoding import sine_1d
from .sam2 import FrameFeatures, Sam2

NO_OBJ_SCORE = -1024.0  # logits of a frame where the object is absent
MEM_SIGMOID_SCALE, MEM_SIGMOID_BIAS = 20.0, -10.0  # mask -> memory-encoder input
MASK_LOGIT_LIMIT = 32.0  # previous logits fed back as a mask prompt are clamped to this


class HeadsOutput(NamedTuple):
    """low_res_masks (B, 1, S/4, S/4) chosen mask logits (NO_OBJ_SCORE where the object is
    absent); high_res_masks (B, 1, S, S) their bilinear upsampling; ious (B, M);
    obj_ptr (B, 256) object pointer; object_score_logits (B, 1)."""

    low_res_masks: Tensor
    high_res_masks: Tensor
    ious: Tensor
    obj_ptr: Tensor
    object_score_logits: Tensor


class Memory(NamedTuple):
    """One earlier frame in the memory bank, as the memory attention reads it.

    t_pos: 0 for conditioning frames, 1..num_maskmem-1 for the recent frames (the most
    recent has num_maskmem - 1); features (B, 64, h, w) (stored in bfloat16 by the official
    predictor: any float dtype); pos (1, h*w, 64) its position tokens, the time encoding of
    ``t_pos`` included (:func:`memory_pos_tokens`: the same for every frame, so callers
    keep them)."""

    t_pos: int
    features: Tensor
    pos: Tensor


def memory_pos_tokens(model: Sam2, maskmem_pos: Tensor, t_pos: int) -> Tensor:
    """(1, h*w, 64) position tokens of a spatial memory at ``t_pos``: the memory encoder's
    sine map ``maskmem_pos`` (1 or B, 64, h, w) plus the learned time encoding."""
    tpos = model.maskmem_tpos_enc[model.num_maskmem - t_pos - 1].view(1, 1, -1)
    return maskmem_pos[:1].flatten(2).transpose(1, 2) + tpos


def _upsample(masks: Tensor, size: int) -> Tensor:
    return F.interpolate(masks, size=(size, size), mode="bilinear", align_corners=False)


def _pointer(model: Sam2, token: Tensor, object_score_logits: Tensor) -> Tensor:
    """Object pointer of a mask token (B, C): the fixed ``no_obj_ptr`` when absent."""
    present = (object_score_logits > 0).float()
    return present * model.obj_ptr_proj(token) + (1 - present) * model.no_obj_ptr


def sam_heads(model: Sam2, pix_feat: Tensor, high_res: tuple[Tensor, Tensor],
              point_coords: Tensor | None = None, point_labels: Tensor | None = None,
              mask_inputs: Tensor | None = None, multimask_output: bool = False) -> HeadsOutput:
    """Prompt encoder + mask decoder on (memory-conditioned) features ``pix_feat``
    (B, 256, h, w).  No points: one padding point.  Labels may include 2/3 (box corners).
    mask_inputs: (B, 1, S/4, S/4) logits or (B, 1, S, S) (antialiased down to S/4).
    With multimask output, the mask (and pointer token) of the highest predicted IoU wins.
    """
    b = pix_feat.shape[0]
    if point_coords is None:
        point_coords = pix_feat.new_zeros(b, 1, 2)
        point_labels = torch.full((b, 1), -1, dtype=torch.long, device=pix_feat.device)
    pe = model.sam_prompt_encoder
    if mask_inputs is not None and tuple(mask_inputs.shape[-2:]) != pe.mask_input_size:
        mask_inputs = F.interpolate(mask_inputs.float(), size=pe.mask_input_size,
                                    mode="bilinear", align_corners=False, antialias=True)
    sparse, dense = pe((point_coords.float(), point_labels.long()), None, mask_inputs,
                       batch_size=b)
    out = model.sam_mask_decoder(pix_feat, pe.get_dense_pe(), sparse, dense, multimask_output,
                                 high_res)
    present = out.object_score_logits > 0
    masks = torch.where(present[:, None, None], out.masks, NO_OBJ_SCORE).float()
    token = out.tokens[:, 0]
    if multimask_output:
        batch = torch.arange(b, device=masks.device)
        best = torch.argmax(out.iou, dim=-1)
        masks = masks[batch, best].unsqueeze(1)
        token = out.tokens[batch, best]
    return HeadsOutput(masks, _upsample(masks, model.image_size), out.iou,
                       _pointer(model, token, out.object_score_logits), out.object_score_logits)


def mask_as_output(model: Sam2, feats: FrameFeatures, mask: Tensor) -> HeadsOutput:
    """A given binary mask (B, 1, S, S) becomes the output as is (logits -10 / +10); only
    its object pointer comes from the decoder, prompted by the 4x-downsampled mask."""
    mask = mask.float()
    high_res = mask * MEM_SIGMOID_SCALE + MEM_SIGMOID_BIAS
    low_res = F.interpolate(high_res, size=(high_res.shape[-2] // 4, high_res.shape[-1] // 4),
                            mode="bilinear", align_corners=False, antialias=True)
    ious = mask.new_ones(mask.shape[0], 1)
    pix_feat = feats.vision.expand(mask.shape[0], -1, -1, -1)
    ptr = sam_heads(model, pix_feat, feats.high_res, mask_inputs=model.mask_downsample(mask)).obj_ptr
    present = torch.any(mask.flatten(1) > 0.0, dim=1)[:, None].float()
    score = MEM_SIGMOID_SCALE * present + MEM_SIGMOID_BIAS
    ptr = present * ptr + (1 - present) * model.no_obj_ptr
    return HeadsOutput(low_res, high_res, ious, ptr, score)


def without_memory(model: Sam2, feats: FrameFeatures, batch: int = 1) -> Tensor:
    """Features of an initial conditioning frame: the image features + ``no_mem_embed``."""
    pix = feats.vision + model.no_mem_embed.view(1, -1, 1, 1)
    return pix.expand(batch, -1, -1, -1)


def with_memory(model: Sam2, feats: FrameFeatures, memories: Sequence[Memory],
                pointers: Sequence[tuple[int, Tensor]], max_pointer_distance: int) -> Tensor:
    """Condition a frame's features on the memory bank -> (B, 256, h, w).

    memories: spatial memories (see :class:`Memory`); pointers: (temporal distance, object
    pointer (B, 256)) pairs, in the order they are attended; the distance is divided by
    ``max_pointer_distance`` (official: min(num_frames, 16) - 1) for its sine code.
    """
    b = pointers[0][1].shape[0] if pointers else memories[0].features.shape[0]
    tokens, pos = [], []
    for mem in memories:
        tokens.append(mem.features.float().flatten(2).transpose(1, 2).expand(b, -1, -1))
        pos.append(mem.pos.expand(b, -1, -1))
    num_ptr_tokens = 0
    if pointers:
        distances = torch.tensor([d for d, _ in pointers], device=feats.vision.device)
        code = sine_1d(distances / max_pointer_distance, model.hidden_dim)
        code = model.obj_ptr_tpos_proj(code)  # (P, mem_dim)
        split = model.hidden_dim // model.mem_dim  # a 256-d pointer = 4 tokens of 64
        ptrs = torch.stack([p for _, p in pointers], dim=1)  # (B, P, 256)
        tokens.append(ptrs.reshape(b, -1, model.mem_dim))  # (B, P * split, 64)
        pos.append(code.repeat_interleave(split, dim=0).unsqueeze(0).expand(b, -1, -1))
        num_ptr_tokens = len(pointers) * split
    h, w = feats.vision.shape[-2:]
    curr = feats.vision.flatten(2).transpose(1, 2).expand(b, -1, -1)
    curr_pos = feats.vision_pos.flatten(2).transpose(1, 2).expand(b, -1, -1)
    out = model.memory_attention(curr, curr_pos, torch.cat(tokens, dim=1), torch.cat(pos, dim=1),
                                 num_ptr_tokens)
    return out.transpose(1, 2).reshape(b, -1, h, w)


def encode_memory(model: Sam2, feats: FrameFeatures, high_res_masks: Tensor,
                  object_score_logits: Tensor, binarize: bool) -> tuple[Tensor, Tensor]:
    """A frame's mask (B, 1, S, S) logits -> its spatial memory (B, 64, h, w) float32 and
    position encoding (1 or B, 64, h, w).  ``binarize``: masks from the user's clicks are
    thresholded at 0 instead of squashed by a sigmoid.  Absent objects get
    ``no_obj_embed_spatial`` added."""
    mask = (high_res_masks > 0).float() if binarize else torch.sigmoid(high_res_masks)
    mask = mask * MEM_SIGMOID_SCALE + MEM_SIGMOID_BIAS
    b = mask.shape[0]
    features, pos = model.memory_encoder(feats.vision.expand(b, -1, -1, -1), mask)
    absent = 1 - (object_score_logits > 0).float()
    features = features + absent[..., None, None] * model.no_obj_embed_spatial[..., None, None]
    return features, pos

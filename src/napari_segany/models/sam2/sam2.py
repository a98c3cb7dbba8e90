"""The ``Sam2`` container (SAM 2 fig. 2): image encoder, prompt encoder, mask decoder,
memory encoder, memory attention and the small learned tensors of the memory bank.

Submodule and parameter names are the official ``SAM2Base`` ones, so the official state
dict loads with (almost) identity keys (see ``keys.py``).

Image API (the promptable-model contract of ``docs/dev/architecture.md``, several levels):
``encode`` returns ``(image_embed, high_res_0, high_res_1)`` and ``decode`` takes that
tuple.  The video building blocks (memory conditioning, memory encoding, the SAM heads of
a tracked frame) are in :mod:`.tracking`; the video state lives in the engine.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..sam.common import MLP
from ..sam.prompt_encoder import PromptEncoder
from ..sam.sam import check_prompts
from .image_encoder import ImageEncoder
from .mask_decoder import Sam2MaskDecoder
from .memory_attention import MemoryAttention
from .memory_encoder import MemoryEncoder

BOX_CORNER_LABELS = (2, 3)  # top-left, bottom-right: a box is fed as two labelled points


class FrameFeatures(NamedTuple):
    """One image through the encoder (B = 1 per frame in the video path).

    vision: (B, 256, S/16, S/16) stride-16 features, *without* ``no_mem_embed``;
    vision_pos: (B, 256, S/16, S/16) its sine position encoding;
    high_res: ((B, 32, S/4, S/4), (B, 64, S/8, S/8)) after ``conv_s0`` / ``conv_s1``.
    """

    vision: Tensor
    vision_pos: Tensor
    high_res: tuple[Tensor, Tensor]


class Sam2(nn.Module):
    """SAM 2 / 2.1 (inference).  ``image_size`` S = 1024 for the official checkpoints."""

    mask_threshold: float = 0.0
    supports_mask_input: bool = True
    feature_levels: int = 3  # encode() returns (image_embed, high_res_0, high_res_1)

    def __init__(self, image_encoder: ImageEncoder, memory_attention: MemoryAttention,
                 memory_encoder: MemoryEncoder, mask_decoder: Sam2MaskDecoder,
                 image_size: int = 1024, num_maskmem: int = 7,
                 max_obj_ptrs_in_encoder: int = 16) -> None:
        super().__init__()
        hidden = image_encoder.neck.d_model  # 256
        mem_dim = memory_encoder.out_proj.out_channels  # 64
        grid = image_size // 16
        self.image_size = image_size
        self.num_maskmem = num_maskmem
        self.max_obj_ptrs_in_encoder = max_obj_ptrs_in_encoder
        self.hidden_dim, self.mem_dim = hidden, mem_dim
        self.image_encoder = image_encoder
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.memory_attention = memory_attention
        self.memory_encoder = memory_encoder
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(num_maskmem, 1, 1, mem_dim))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, hidden))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, hidden))  # unused in 2.1 inference
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, hidden))
        self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, mem_dim))
        self.sam_prompt_encoder = PromptEncoder(
            embed_dim=hidden, image_embedding_size=(grid, grid),
            input_image_size=(image_size, image_size), mask_in_chans=16)
        self.sam_mask_decoder = mask_decoder
        self.obj_ptr_proj = MLP(hidden, hidden, hidden, 3)
        self.obj_ptr_tpos_proj = nn.Linear(hidden, mem_dim)

    # --- encoder ----------------------------------------------------------------------------
    def _check_input(self, x: Tensor) -> None:
        s = self.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, s, s):
            raise ValueError(
                f"encode() got an input of shape {tuple(x.shape)}; expected (B, 3, {s}, {s}): "
                f"resize the image to {s} x {s} (no padding) and normalise it first"
            )

    def encode_frame(self, x: Tensor) -> FrameFeatures:
        """x (B, 3, S, S) normalised image -> :class:`FrameFeatures` (the video path)."""
        self._check_input(x)
        out = self.image_encoder(x)
        decoder = self.sam_mask_decoder
        high_res = (decoder.conv_s0(out.features[0]), decoder.conv_s1(out.features[1]))
        return FrameFeatures(out.features[-1], out.pos[-1], high_res)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (B, 3, S, S) normalised, stretched (not padded) image -> the image-predictor
        features ``(image_embed (B, 256, S/16, S/16) with no_mem_embed added,
        high_res_0 (B, 32, S/4, S/4), high_res_1 (B, 64, S/8, S/8))``."""
        feats = self.encode_frame(x)
        embed = feats.vision + self.no_mem_embed.view(1, -1, 1, 1)
        return embed, feats.high_res[0], feats.high_res[1]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Same as :meth:`encode` (so tracing/profiling tools can call the module)."""
        return self.encode(x)

    # --- image decoder ------------------------------------------------------------------------
    def decode(
        self, features: tuple[Tensor, Tensor, Tensor], point_coords: Tensor | None = None,
        point_labels: Tensor | None = None, boxes: Tensor | None = None,
        mask_input: Tensor | None = None, multimask_output: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """Decode B prompt sets against ``encode``'s features (batch 1 shared, or B).

        point_coords (B, N, 2) x, y in model-input pixels (before the +0.5 centre shift);
        point_labels (B, N): 1 foreground, 0 background, -1 padding; boxes (B, 4) x0, y0,
        x1, y1 (fed as two points labelled 2, 3 *before* the points, as SAM 2 does); a
        padding point is always appended after them.  mask_input (B or 1, 1, S/4, S/4).
        Returns low_res_logits (B, M, S/4, S/4) and iou_predictions (B, M): M = 3 (tokens
        1..3) if multimask_output, else 1 (token 0 or, when unstable, the best of 1..3).
        The official image predictor clamps the low-res logits it returns to [-32, 32]
        (after upsampling them); this method does not.
        """
        embed, high_res_0, high_res_1 = features
        pe = self.sam_prompt_encoder
        points, boxes, mask_input, batch = check_prompts(
            pe, embed, point_coords, point_labels, boxes, mask_input)
        points = boxes_as_points(points, boxes)
        sparse, dense = pe(points, None, mask_input, batch_size=batch)
        out = self.sam_mask_decoder(embed, pe.get_dense_pe(), sparse, dense, multimask_output,
                                    (high_res_0, high_res_1))
        return out.masks, out.iou


def boxes_as_points(points: tuple[Tensor, Tensor] | None, boxes: Tensor | None
                    ) -> tuple[Tensor, Tensor] | None:
    """Boxes (B, 4) become two points labelled 2, 3, placed before the points (B, N, 2)."""
    if boxes is None:
        return points
    corners = boxes.reshape(-1, 2, 2)
    labels = torch.tensor(BOX_CORNER_LABELS, device=boxes.device).expand(corners.shape[0], 2)
    if points is None:
        return corners, labels
    coords, point_labels = points
    return torch.cat([corners, coords], dim=1), torch.cat([labels, point_labels.long()], dim=1)

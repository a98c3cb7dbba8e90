"""SAM 2's mask decoder ("mask decoder" in SAM 2 fig. 2): SAM's decoder plus

* an object-score token and MLP head (is the object in this frame at all?),
* high-resolution skips: the stride-8 and stride-4 image features (already through
  ``conv_s1`` / ``conv_s0``, done once per image by the encoder) are added inside the 4x
  upscaling, before each activation,
* IoU predictions through a sigmoid,
* in eval, single-mask output falls back to the best of the three multimask outputs when
  token 0's mask is unstable (IoU of ``logits > 0.05`` vs ``logits > -0.05`` below 0.98).

Token order in the transformer: [object score, IoU, mask 0..3, prompts...].
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..sam.common import MLP
from ..sam.mask_decoder import MaskDecoder, _convt2x2_as_linear
from ..sam.transformer import TwoWayTransformer


class DecoderOutput(NamedTuple):
    """masks (B, M, 4h, 4w) logits; iou (B, M); tokens (B, M or 1, C) mask-token outputs
    (for the object pointer); object_score_logits (B, 1), > 0 means the object is present."""

    masks: Tensor
    iou: Tensor
    tokens: Tensor
    object_score_logits: Tensor


def _stability(logits: Tensor, delta: float) -> Tensor:
    """(B, 1, H, W) logits -> (B, 1) IoU of the masks thresholded at +delta and -delta."""
    flat = logits.flatten(-2)
    inter = (flat > delta).sum(-1).float()
    union = (flat > -delta).sum(-1).float()
    return torch.where(union > 0, inter / union, 1.0)


class Sam2MaskDecoder(MaskDecoder):
    """SAM 2.1's decoder (all options of the official configs on)."""

    def __init__(self, *, transformer_dim: int, transformer: TwoWayTransformer,
                 num_multimask_outputs: int = 3, iou_head_depth: int = 3,
                 iou_head_hidden_dim: int = 256, dynamic_multimask_via_stability: bool = True,
                 dynamic_multimask_stability_delta: float = 0.05,
                 dynamic_multimask_stability_thresh: float = 0.98) -> None:
        super().__init__(transformer_dim=transformer_dim, transformer=transformer,
                         num_multimask_outputs=num_multimask_outputs,
                         iou_head_depth=iou_head_depth, iou_head_hidden_dim=iou_head_hidden_dim)
        self.obj_score_token = nn.Embedding(1, transformer_dim)
        self.conv_s0 = nn.Conv2d(transformer_dim, transformer_dim // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(transformer_dim, transformer_dim // 4, kernel_size=1)
        self.pred_obj_score_head = MLP(transformer_dim, transformer_dim, 1, 3)
        self.dynamic_multimask_via_stability = dynamic_multimask_via_stability
        self.stability_delta = dynamic_multimask_stability_delta
        self.stability_thresh = dynamic_multimask_stability_thresh

    def forward(self, image_embeddings: Tensor, image_pe: Tensor, sparse: Tensor, dense: Tensor,
                multimask_output: bool, high_res: tuple[Tensor, Tensor]) -> DecoderOutput:
        """image_embeddings (1 or B, C, h, w); image_pe (1, C, h, w); sparse (B, N, C);
        dense (1 or B, C, h, w); high_res: ((1 or B, C/8, 4h, 4w), (1 or B, C/4, 2h, 2w)).
        M = 3 (tokens 1..3) if multimask_output else 1 (token 0, or the stability fallback).
        """
        b = sparse.shape[0]
        out_tokens = torch.cat([self.obj_score_token.weight, self.iou_token.weight,
                                self.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
        src = image_embeddings + dense
        h, w = src.shape[-2:]
        hs, keys = self.transformer(src, image_pe, tokens)
        mask_tokens_out = hs[:, 2: 2 + self.num_mask_tokens]

        fallback = (not multimask_output and self.dynamic_multimask_via_stability
                    and not self.training)
        chosen = range(1, 4) if multimask_output else (range(4) if fallback else range(1))
        hyper_in = torch.stack(
            [self.output_hypernetworks_mlps[i](mask_tokens_out[:, i]) for i in chosen], dim=1)
        masks = self._masks(self._upscale_with_skips(keys, h, w, high_res), hyper_in, h, w)
        iou = torch.sigmoid(self.iou_prediction_head(hs[:, 1]))
        score = self.pred_obj_score_head(hs[:, 0])
        if multimask_output:
            return DecoderOutput(masks, iou[:, 1:], mask_tokens_out[:, 1:], score)
        tokens_out = mask_tokens_out[:, 0:1]  # the pointer always uses token 0 here
        if fallback:
            masks, iou = self._most_stable(masks, iou)
        return DecoderOutput(masks, iou[:, :1], tokens_out, score)

    def _most_stable(self, masks: Tensor, iou: Tensor) -> tuple[Tensor, Tensor]:
        """masks (B, 4, H, W), iou (B, 4) -> token 0 where stable, else the best of 1..3."""
        batch = torch.arange(masks.shape[0], device=masks.device)
        best = torch.argmax(iou[:, 1:], dim=-1) + 1
        single = masks[:, :1]
        stable = _stability(single, self.stability_delta) >= self.stability_thresh  # (B, 1)
        out_masks = torch.where(stable[..., None, None], single, masks[batch, best][:, None])
        out_iou = torch.where(stable, iou[:, :1], iou[batch, best][:, None])
        return out_masks, out_iou

    def _upscale_with_skips(self, tokens: Tensor, h: int, w: int,
                            high_res: tuple[Tensor, Tensor]) -> Tensor:
        """Image tokens (B, h*w, C) -> (B, h, w, 2, 2, 2, 2, C/8) upscaled features,
        channels-last: output pixel (4y + 2i + k, 4x + 2j + l) is element [y, x, i, j, k, l].

        Equals the official NCHW ``act(ln(dc1(x) + s1))`` then ``act(dc2(.) + s0)``.
        """
        up1, norm, _, up2, _ = self.output_upscaling
        feat_s0, feat_s1 = high_res
        x = F.linear(tokens, *_convt2x2_as_linear(up1))
        x = x.view(tokens.shape[0], h, w, 2, 2, -1)
        s1 = feat_s1.view(feat_s1.shape[0], -1, h, 2, w, 2).permute(0, 2, 4, 3, 5, 1)
        x = F.gelu(F.layer_norm(x + s1, (x.shape[-1],), norm.weight, norm.bias, norm.eps))
        x = F.linear(x, *_convt2x2_as_linear(up2)).unflatten(-1, (2, 2, -1))
        s0 = feat_s0.view(feat_s0.shape[0], -1, h, 2, 2, w, 2, 2).permute(0, 2, 5, 3, 6, 4, 7, 1)
        return F.gelu(x + s0)

    @staticmethod
    def _masks(up: Tensor, hyper_in: Tensor, h: int, w: int) -> Tensor:
        """(Bk, h, w, 2, 2, 2, 2, c) features x (B, M, c) hypernetwork weights -> (B, M, 4h, 4w)."""
        m = hyper_in.shape[1]
        masks = up.flatten(1, -2) @ hyper_in.transpose(1, 2)  # (B, h*w*16, M)
        masks = masks.view(-1, h, w, 2, 2, 2, 2, m).permute(0, 7, 1, 3, 5, 2, 4, 6)
        return masks.reshape(-1, m, 4 * h, 4 * w)

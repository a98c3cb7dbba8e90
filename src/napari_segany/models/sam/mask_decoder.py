"""SAM's mask decoder: 4 mask tokens + an IoU token through the two-way transformer,
4x upscaling of the image tokens and per-token hypernetwork MLPs.

Mask token 0 is the single-mask output; tokens 1..3 are the multimask outputs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import MLP, LayerNorm2d
from .transformer import TwoWayTransformer


def _convt2x2_as_linear(conv: nn.ConvTranspose2d) -> tuple[Tensor, Tensor]:
    """A stride-2, 2x2 transposed conv is a per-pixel linear map C_in -> (2, 2, C_out).

    Returns (weight (4*C_out, C_in), bias (4*C_out,)) with outputs ordered (di, dj, c_out),
    so the result can stay channels-last (the official runs it on NCHW tensors).
    """
    w = conv.weight  # (C_in, C_out, 2, 2)
    weight = w.permute(2, 3, 1, 0).reshape(-1, w.shape[0])
    return weight, conv.bias.repeat(4)


class MaskDecoder(nn.Module):
    """Predicts masks and their IoU from image embeddings and prompt embeddings."""

    def __init__(
        self, *, transformer_dim: int, transformer: TwoWayTransformer,
        num_multimask_outputs: int = 3, iou_head_depth: int = 3, iou_head_hidden_dim: int = 256,
    ) -> None:
        super().__init__()
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3)
            for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth
        )
        self.batch_chunk = 2  # prompt sets decoded together, see forward()

    def _upscale(self, tokens: Tensor, h: int, w: int) -> Tensor:
        """Image tokens (B, h*w, C) -> upscaled features (B, h, w, 2, 2, 2, 2, C/8).

        Equals ``output_upscaling`` on (B, C, h, w), kept channels-last: output pixel
        (4y + 2i + k, 4x + 2j + l) is element [y, x, i, j, k, l].
        """
        up1, norm, _, up2, _ = self.output_upscaling
        x = F.linear(tokens, *_convt2x2_as_linear(up1))
        x = x.view(tokens.shape[0], h, w, 2, 2, -1)
        x = F.gelu(F.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, norm.eps))
        x = F.gelu(F.linear(x, *_convt2x2_as_linear(up2)))
        return x.unflatten(-1, (2, 2, -1))

    def forward(
        self, image_embeddings: Tensor, image_pe: Tensor, sparse_prompt_embeddings: Tensor,
        dense_prompt_embeddings: Tensor, multimask_output: bool,
    ) -> tuple[Tensor, Tensor]:
        """image_embeddings (1 or B, C, h, w); image_pe (1, C, h, w); sparse (B, N, C);
        dense (1 or B, C, h, w).  Returns masks (B, M, 4h, 4w) logits and iou (B, M),
        M = 3 (tokens 1..3) if multimask_output else 1 (token 0).

        Larger batches run in chunks of ``batch_chunk`` prompt sets: each set needs 4-8 MB
        per activation at 64 x 64, and beyond two sets caches and page faults cost more
        than the shared work saves (per prompt, 1 thread: 41 ms alone, 37 ms in pairs,
        47 ms in fours, 61 ms in one batch of 64).
        """
        b = sparse_prompt_embeddings.shape[0]
        if b <= self.batch_chunk:
            return self._predict(image_embeddings, image_pe, sparse_prompt_embeddings,
                                 dense_prompt_embeddings, multimask_output)
        outs = []
        for i in range(0, b, self.batch_chunk):
            part = slice(i, i + self.batch_chunk)
            emb = image_embeddings if image_embeddings.shape[0] == 1 else image_embeddings[part]
            dense = (dense_prompt_embeddings if dense_prompt_embeddings.shape[0] == 1
                     else dense_prompt_embeddings[part])
            outs.append(self._predict(emb, image_pe, sparse_prompt_embeddings[part], dense,
                                      multimask_output))
        return torch.cat([m for m, _ in outs]), torch.cat([q for _, q in outs])

    def _predict(
        self, image_embeddings: Tensor, image_pe: Tensor, sparse: Tensor, dense: Tensor,
        multimask_output: bool,
    ) -> tuple[Tensor, Tensor]:
        """One chunk of ``forward`` (same shapes).

        The transformer and the upscaling compute in their weights' dtype (bfloat16 in
        everything mode's bf16 decoder, ``models.precision.bf16_decoding_twin``); the token
        heads and the final logits stay float32 there: the IoU is compared with thresholds
        and the logits' sign is the mask.  The heads and logits follow the heads' dtype, so a
        model cast as a whole (``model.to(torch.bfloat16)``) runs in that dtype throughout.
        In float32 every cast returns its tensor itself.
        """
        b = sparse.shape[0]
        dtype = self.output_upscaling[0].weight.dtype
        head_dtype = self.iou_prediction_head.layers[0].weight.dtype
        out_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
        src = image_embeddings + dense  # batch 1 stays 1 (shared)
        h, w = src.shape[-2:]
        hs, keys = self.transformer(src.to(dtype), image_pe.to(dtype), tokens.to(dtype))
        hs = hs.to(head_dtype)

        # only the returned masks' hypernetworks run; the transformer needs all tokens
        chosen = range(1, self.num_mask_tokens) if multimask_output else range(1)
        hyper_in = torch.stack(
            [self.output_hypernetworks_mlps[i](hs[:, 1 + i]) for i in chosen], dim=1
        )  # (B, M, C/8)
        up = self._upscale(keys, h, w).to(head_dtype)  # (Bk, h, w, 2, 2, 2, 2, C/8)
        m = hyper_in.shape[1]
        masks = up.flatten(1, -2) @ hyper_in.transpose(1, 2)  # (B, h*w*16, M)
        masks = masks.view(-1, h, w, 2, 2, 2, 2, m).permute(0, 7, 1, 3, 5, 2, 4, 6)
        masks = masks.reshape(-1, m, 4 * h, 4 * w)

        iou = self.iou_prediction_head(hs[:, 0])
        iou = iou[:, 1:] if multimask_output else iou[:, :1]
        return masks, iou

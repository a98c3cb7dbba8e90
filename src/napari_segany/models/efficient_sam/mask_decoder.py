"""EfficientSAM mask decoder: 4 mask tokens + IoU token through the two-way transformer.

Differences from Meta SAM's decoder: no dense/mask prompt input (no ``no_mask_embed``:
the image embedding enters unchanged), the upscaling path is a ModuleList
``final_output_upscaling_layers`` of (ConvTranspose2d, GroupNorm(1) | Identity, GELU),
and the MLP heads use :class:`~.common.MLPBlock` key names.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .common import MLPBlock


def _upscaling_layer(in_dim: int, out_dim: int, last: bool, act: type[nn.Module]) -> nn.Sequential:
    """ConvT 2x2/2 -> GroupNorm(1, out) (Identity for the last layer) -> activation."""
    norm = nn.Identity() if last else nn.GroupNorm(1, out_dim)
    return nn.Sequential(nn.ConvTranspose2d(in_dim, out_dim, kernel_size=2, stride=2), norm, act())


class MaskDecoder(nn.Module):
    """``forward(image (1|B, C, h, w), image_pe (1, C, h, w), sparse (B, T, C), multimask)``
    -> low-res logits (B, M, 4h, 4w), IoU predictions (B, M); M = 3 or 1."""

    def __init__(
        self,
        transformer: nn.Module,
        transformer_dim: int = 256,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 2,
        iou_head_hidden_dim: int = 256,
        upscaling_layer_dims: tuple[int, ...] = (64, 32),
        activation: type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1 if num_multimask_outputs > 1 else 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        dims = [transformer_dim, *upscaling_layer_dims]
        self.final_output_upscaling_layers = nn.ModuleList(
            _upscaling_layer(dims[i], dims[i + 1], i == len(dims) - 2, activation)
            for i in range(len(dims) - 1)
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLPBlock(transformer_dim, transformer_dim, dims[-1], 2, activation)
            for _ in range(self.num_mask_tokens)
        )
        # official builder passes iou_head_depth - 1 = 2 hidden layers (+ fc)
        self.iou_prediction_head = MLPBlock(
            transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth, activation
        )

    def forward(
        self, image_embeddings: Tensor, image_pe: Tensor, sparse_prompt_embeddings: Tensor,
        multimask_output: bool = True,
    ) -> tuple[Tensor, Tensor]:
        masks, iou_pred = self.predict_masks(image_embeddings, image_pe, sparse_prompt_embeddings)
        # Official selection: tokens 1..3 for multimask, token 0 otherwise (no sorting).
        if multimask_output and self.num_multimask_outputs > 1:
            return masks[:, 1:], iou_pred[:, 1:]
        return masks[:, :1], iou_pred[:, :1]

    def predict_masks(
        self, image_embeddings: Tensor, image_pe: Tensor, sparse_prompt_embeddings: Tensor
    ) -> tuple[Tensor, Tensor]:
        """All mask tokens: logits (B, num_mask_tokens, 4h, 4w), IoU (B, num_mask_tokens)."""
        b = sparse_prompt_embeddings.shape[0]
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens.expand(b, -1, -1), sparse_prompt_embeddings], dim=1)
        # A batch-1 embedding is not tiled to B (the official code tiles it): the
        # transformer broadcasts it, which gives the same result with less work.
        _, c, h, w = image_embeddings.shape
        hs, src = self.transformer(image_embeddings, image_pe, tokens)
        src = src.expand(b, -1, -1)
        iou_token_out = hs[:, 0]
        mask_tokens_out = hs[:, 1 : 1 + self.num_mask_tokens]

        upscaled = src.transpose(1, 2).reshape(b, c, h, w)
        for layer in self.final_output_upscaling_layers:
            upscaled = layer(upscaled)
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
            dim=1,
        )  # (B, num_mask_tokens, C_up)
        b, c_up, h_up, w_up = upscaled.shape
        masks = (hyper_in @ upscaled.reshape(b, c_up, h_up * w_up)).reshape(b, -1, h_up, w_up)
        return masks, self.iou_prediction_head(iou_token_out)

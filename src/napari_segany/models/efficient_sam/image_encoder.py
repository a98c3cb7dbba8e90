"""EfficientSAM image encoder: a plain (global-attention) ViT with a SAM-style neck.

Input (B, 3, S, S) normalised RGB, S = 1024 -> output (B, 256, S/16, S/16).
The absolute position embedding was learnt on the 224-px pretraining grid
(1 cls + 14x14 tokens); the cls entry is dropped and the 14x14 grid is resampled
bicubically to the actual token grid at every forward (cheap: 14x14 -> 64x64).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import LayerNorm2d

PRETRAIN_IMG_SIZE = 224  # pos_embed grid of the SAMI/ImageNet pretraining


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection: (B, 3, S, S) -> (B, C, S/p, S/p)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class Attention(nn.Module):
    """Multi-head self-attention on (B, N, C) tokens (fused ``qkv``, output ``proj``)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, C/heads)
        # Default scale 1/sqrt(C/heads) equals the official head_dim**-0.5; the README of
        # the parity case measured SDPA against the explicit softmax at <= 3.4e-6.
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2."""

    def __init__(self, dim: int, hidden_dim: int, act_layer: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-6, as in the official ViT)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def resize_abs_pos(abs_pos: Tensor, hw: tuple[int, int], has_cls_token: bool = True) -> Tensor:
    """(1, 1 + g*g, C) pretraining position embedding -> (1, h, w, C) for an h x w grid.

    Drops the cls entry and resamples the g x g grid bicubically (align_corners=False).
    """
    if has_cls_token:
        abs_pos = abs_pos[:, 1:]
    size = math.isqrt(abs_pos.shape[1])
    if size * size != abs_pos.shape[1]:
        raise ValueError(f"pos_embed holds {abs_pos.shape[1]} grid entries, not a square grid")
    grid = abs_pos.reshape(1, size, size, -1)
    if (size, size) == tuple(hw):
        return grid
    grid = F.interpolate(grid.permute(0, 3, 1, 2), size=hw, mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1)


class ImageEncoderViT(nn.Module):
    """Plain ViT encoder.  ``forward``: (B, 3, S, S) -> (B, neck_dim, S/p, S/p), in the
    input's dtype.

    Computes in the dtype of its weights (float32, or bfloat16 after
    ``models.precision.set_encoder_precision``; LayerNorms and ``pos_embed`` stay float32:
    the position grid is resampled in float32 and cast once).
    """

    def __init__(
        self,
        img_size: int = 1024,
        patch_size: int = 16,
        in_chans: int = 3,
        patch_embed_dim: int = 192,
        depth: int = 12,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        neck_dim: int = 256,
    ) -> None:
        super().__init__()
        self.img_size = img_size
        self.patch_size = patch_size
        self.image_embedding_size = img_size // patch_size
        self.transformer_output_dim = neck_dim
        self.patch_embed = PatchEmbed(patch_size, in_chans, patch_embed_dim)
        num_positions = (PRETRAIN_IMG_SIZE // patch_size) ** 2 + 1  # + cls token
        self.pos_embed = nn.Parameter(torch.zeros(1, num_positions, patch_embed_dim))
        self.blocks = nn.ModuleList(
            Block(patch_embed_dim, num_heads, mlp_ratio) for _ in range(depth)
        )
        self.neck = nn.Sequential(
            nn.Conv2d(patch_embed_dim, neck_dim, kernel_size=1, bias=False),
            LayerNorm2d(neck_dim),
            nn.Conv2d(neck_dim, neck_dim, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(neck_dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(
                f"EfficientSAM's encoder needs a {self.img_size}x{self.img_size} input, got "
                f"{tuple(x.shape[-2:])}: resize (stretch) the image first."
            )
        out_dtype, dtype = x.dtype, self.patch_embed.proj.weight.dtype
        x = self.patch_embed(x.to(dtype)).permute(0, 2, 3, 1)  # (B, h, w, C)
        b, h, w, c = x.shape
        x = x + resize_abs_pos(self.pos_embed, (h, w)).to(dtype)
        x = x.reshape(b, h * w, c)
        for blk in self.blocks:
            x = blk(x)
        x = x.reshape(b, h, w, c).permute(0, 3, 1, 2)
        return self.neck(x).to(out_dtype)

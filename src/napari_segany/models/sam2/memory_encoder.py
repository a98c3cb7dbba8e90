"""SAM 2's memory encoder ("memory encoder" in SAM 2 fig. 2).

A frame's predicted mask (B, 1, S, S), already mapped to the memory scale by the caller
(sigmoid or binarised, then x 20 - 10), is downsampled 16x by strided convolutions, added
to a 1x1 projection of the frame's stride-16 image features (B, 256, S/16, S/16), fused by
two ConvNeXt blocks and projected to ``out_dim`` (64) channels: the spatial memory of that
frame, with its 2D sine position encoding.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..sam.common import LayerNorm2d
from .position_encoding import PositionEmbeddingSine


class MaskDownSampler(nn.Module):
    """(B, 1, S, S) -> (B, embed_dim, S/16, S/16): [conv 3x3/2, LayerNorm2d, GELU] x 4
    (channels 1 -> 4 -> 16 -> 64 -> 256), then a 1x1 conv (keys ``encoder.<i>``)."""

    def __init__(self, embed_dim: int = 256, kernel_size: int = 3, stride: int = 2,
                 padding: int = 1, total_stride: int = 16) -> None:
        super().__init__()
        num_layers = int(math.log2(total_stride) // math.log2(stride))
        self.encoder = nn.Sequential()
        chans_in = 1
        for _ in range(num_layers):
            chans_out = chans_in * stride**2
            self.encoder.append(nn.Conv2d(chans_in, chans_out, kernel_size, stride, padding))
            self.encoder.append(LayerNorm2d(chans_out))
            self.encoder.append(nn.GELU())
            chans_in = chans_out
        self.encoder.append(nn.Conv2d(chans_in, embed_dim, kernel_size=1))

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)


class CXBlock(nn.Module):
    """ConvNeXt block: depthwise 7x7 conv, LayerNorm, pointwise MLP (x4) with GELU,
    layer scale ``gamma``, residual.  (B, C, H, W) -> same."""

    def __init__(self, dim: int, kernel_size: int = 7, padding: int = 3) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=kernel_size, padding=padding, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(F.gelu(self.pwconv1(y)))
        return x + y.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    """A stack of :class:`CXBlock` (keys ``layers.<i>``)."""

    def __init__(self, dim: int, num_layers: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(CXBlock(dim) for _ in range(num_layers))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """Mask + image features -> (memory (B, out_dim, h, w), position encoding (B, out_dim, h, w))."""

    def __init__(self, out_dim: int = 64, in_dim: int = 256) -> None:
        super().__init__()
        self.mask_downsampler = MaskDownSampler(in_dim)
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = Fuser(in_dim)
        self.out_proj = nn.Conv2d(in_dim, out_dim, kernel_size=1)
        self.position_encoding = PositionEmbeddingSine(out_dim)

    def forward(self, pix_feat: Tensor, mask_for_mem: Tensor) -> tuple[Tensor, Tensor]:
        """pix_feat (B, 256, h, w) raw stride-16 features; mask_for_mem (B, 1, 16h, 16w)
        already scaled to the memory range (no sigmoid here)."""
        x = self.pix_feat_proj(pix_feat) + self.mask_downsampler(mask_for_mem)
        x = self.out_proj(self.fuser(x))
        return x, self.position_encoding(x).to(x.dtype)

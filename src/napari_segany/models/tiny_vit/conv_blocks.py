"""TinyViT's convolutional parts: Conv2d_BN, PatchEmbed, MBConv, PatchMerging, ConvLayer."""
from __future__ import annotations


import torch
from torch import Tensor, nn

from .fast_ops import ConvStep, DerivedCacheMixin, fast_conv, gelu_, run_strips

class Conv2d_BN(DerivedCacheMixin, nn.Sequential):  # noqa: N801 (official name)
    """Conv2d without bias followed by BatchNorm2d (keys ``c.*`` and ``bn.*``)."""

    def __init__(self, a: int, b: int, ks: int = 1, stride: int = 1, pad: int = 0,
                 dilation: int = 1, groups: int = 1, bn_weight_init: float = 1.0) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(a, b, ks, stride, pad, dilation, groups, bias=False))
        bn = nn.BatchNorm2d(b)
        nn.init.constant_(bn.weight, bn_weight_init)
        nn.init.constant_(bn.bias, 0)
        self.add_module("bn", bn)

    def fused(self) -> tuple[Tensor, Tensor]:
        """BatchNorm (running statistics) folded into the conv: (weight, bias), cached.

        weight (C_out, C_in/groups, k, k); bias (C_out,); both in the conv weight's dtype.
        The BatchNorm stays float32 under bfloat16 (``models/precision.py``): the fold is
        computed in float32 and rounded once.
        """
        c, bn = self.c, self.bn
        sources = (c.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var)

        def compute():
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            w = (c.weight * scale[:, None, None, None]).to(c.weight.dtype).contiguous()
            return w, (bn.bias - bn.running_mean * scale).to(c.weight.dtype).contiguous()

        return self._derived("fused", sources, compute)

    def step(self, gelu: bool = False) -> ConvStep:
        """This conv (folded) as a strip-pipeline step, optionally with GELU fused."""
        w, b = self.fused()
        return ConvStep(w, b, self.c, gelu)


class PatchEmbed(nn.Module):
    """(B, 3, H, W) -> (B, embed_dim, H/4, W/4): Conv_BN(3x3, s2), GELU, Conv_BN(3x3, s2)."""

    def __init__(self, in_chans: int, embed_dim: int, resolution: int,
                 activation: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.patches_resolution = (resolution // 4, resolution // 4)
        self.num_patches = self.patches_resolution[0] * self.patches_resolution[1]
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        n = embed_dim
        self.seq = nn.Sequential(
            Conv2d_BN(in_chans, n // 2, 3, 2, 1),
            activation(),
            Conv2d_BN(n // 2, n, 3, 2, 1),
        )

    def forward(self, x: Tensor, fast: bool = False) -> Tensor:
        return self.forward_fast(x) if fast else self.seq(x)

    def forward_fast(self, x: Tensor) -> Tensor:
        """x (B, 3, H, W) channels-last -> (B, embed_dim, H/4, W/4) channels-last."""
        steps = (self.seq[0].step(gelu=True), self.seq[2].step())
        return run_strips(x, steps, self.embed_dim)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, GELU, 3x3 depthwise, GELU, 1x1 project, +x, GELU."""

    def __init__(self, in_chans: int, out_chans: int, expand_ratio: float,
                 activation: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.hidden_chans = int(in_chans * expand_ratio)
        self.out_chans = out_chans
        self.conv1 = Conv2d_BN(in_chans, self.hidden_chans, ks=1)
        self.act1 = activation()
        self.conv2 = Conv2d_BN(self.hidden_chans, self.hidden_chans, ks=3, stride=1, pad=1,
                               groups=self.hidden_chans)
        self.act2 = activation()
        self.conv3 = Conv2d_BN(self.hidden_chans, out_chans, ks=1, bn_weight_init=0.0)
        self.act3 = activation()

    def forward(self, x: Tensor, fast: bool = False) -> Tensor:
        if fast:
            return self.forward_fast(x)
        shortcut = x
        x = self.act1(self.conv1(x))
        x = self.act2(self.conv2(x))
        x = self.conv3(x)
        x += shortcut
        return self.act3(x)

    def forward_fast(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) channels-last -> same shape, in row strips (hidden is 4C wide)."""
        w3, b3 = self.conv3.fused()
        steps = (self.conv1.step(gelu=True), self.conv2.step(gelu=True))

        def project(hidden: Tensor, r0: int, r1: int) -> Tensor:
            y = fast_conv(hidden, w3, b3, (1, 1), (0, 0), 1, residual=x[:, :, r0:r1])
            return gelu_(y)

        return run_strips(x, steps, self.out_chans, finish=project)


class PatchMerging(nn.Module):
    """Downsampling between stages: 1x1 Conv_BN, GELU, 3x3 depthwise Conv_BN (stride 2, or
    1 for out_dim 320/448/576 as in the official code), GELU, 1x1 Conv_BN.

    Input (B, C, H, W) or tokens (B, H*W, C); output tokens (B, H'*W', out_dim).
    """

    def __init__(self, input_resolution: tuple[int, int], dim: int, out_dim: int,
                 activation: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        self.dim = dim
        self.out_dim = out_dim
        self.act = activation()
        self.conv1 = Conv2d_BN(dim, out_dim, 1, 1, 0)
        # official rule: the merge into the last stage of MobileSAM's TinyViT keeps 64x64
        stride_c = 1 if out_dim in (320, 448, 576) else 2
        self.conv2 = Conv2d_BN(out_dim, out_dim, 3, stride_c, 1, groups=out_dim)
        self.conv3 = Conv2d_BN(out_dim, out_dim, 1, 1, 0)

    def forward(self, x: Tensor, fast: bool = False) -> Tensor:
        if fast:
            return self.forward_fast(x)
        if x.ndim == 3:
            h, w = self.input_resolution
            x = x.view(len(x), h, w, -1).permute(0, 3, 1, 2)
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        x = self.conv3(x)
        return x.flatten(2).transpose(1, 2)

    def forward_fast(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) channels-last -> tokens (B, H', W', out_dim) contiguous."""
        steps = (self.conv1.step(gelu=True), self.conv2.step(gelu=True), self.conv3.step())
        return run_strips(x, steps, self.out_dim).permute(0, 2, 3, 1)


class ConvLayer(nn.Module):
    """Stage 0: ``depth`` MBConv blocks, then PatchMerging."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], depth: int,
                 activation: type[nn.Module] = nn.GELU,
                 downsample: type[PatchMerging] | None = None, out_dim: int | None = None,
                 conv_expand_ratio: float = 4.0) -> None:
        super().__init__()
        self.dim = dim
        self.input_resolution = input_resolution
        self.depth = depth
        self.blocks = nn.ModuleList(
            MBConv(dim, dim, conv_expand_ratio, activation) for _ in range(depth))
        self.downsample = (downsample(input_resolution, dim=dim, out_dim=out_dim,
                                      activation=activation) if downsample else None)

    def forward(self, x: Tensor, fast: bool = False) -> Tensor:
        """Reference: (B, C, H, W) -> tokens (B, H'*W', C').  fast: see ``forward_fast``."""
        for blk in self.blocks:
            x = blk(x, fast=fast)
        return self.downsample(x, fast=fast) if self.downsample is not None else x

    def forward_fast(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) channels-last -> tokens (B, H', W', C') (or NCHW if no merge)."""
        return self(x, fast=True)



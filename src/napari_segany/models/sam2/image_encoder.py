"""SAM 2's image encoder ("image encoder" in SAM 2 fig. 2): Hiera trunk + FPN neck.

The neck maps every trunk stage to ``d_model`` (256) channels with a 1x1 convolution and
adds a nearest-upsampled copy of the coarser level on the levels in ``fpn_top_down_levels``
(only the stride-16 level in the official configs); ``scalp`` = 1 then drops the stride-32
level.  Each level gets a 2D sine position encoding.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .hiera import Hiera
from .position_encoding import PositionEmbeddingSine


@dataclass
class BackboneOutput:
    """Feature pyramid of one batch of images, highest resolution first.

    features: [(B, 256, S/4, S/4), (B, 256, S/8, S/8), (B, 256, S/16, S/16)];
    pos: their sine encodings (same shapes, float32).
    """

    features: list[Tensor]
    pos: list[Tensor]


class FpnNeck(nn.Module):
    """Lateral 1x1 convolutions (``convs[0]`` for the coarsest level) and a top-down path."""

    def __init__(self, position_encoding: PositionEmbeddingSine, d_model: int,
                 backbone_channel_list: list[int], fpn_top_down_levels: list[int] | None = None,
                 fpn_interp_model: str = "nearest") -> None:
        super().__init__()
        self.position_encoding = position_encoding
        self.d_model = d_model
        self.backbone_channel_list = list(backbone_channel_list)
        self.convs = nn.ModuleList()
        for dim in backbone_channel_list:
            lateral = nn.Sequential()
            lateral.add_module("conv", nn.Conv2d(dim, d_model, kernel_size=1))
            self.convs.append(lateral)
        levels = range(len(self.convs)) if fpn_top_down_levels is None else fpn_top_down_levels
        self.fpn_top_down_levels = list(levels)
        self.fpn_interp_model = fpn_interp_model

    def forward(self, xs: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Trunk stages (highest resolution first) -> (features, position encodings)."""
        n = len(self.convs) - 1
        out: list[Tensor | None] = [None] * (n + 1)
        pos: list[Tensor | None] = [None] * (n + 1)
        prev = None
        for i in range(n, -1, -1):  # coarse to fine
            lateral = self.convs[n - i](xs[i])
            if i in self.fpn_top_down_levels and prev is not None:
                top_down = F.interpolate(
                    prev.to(torch.float32), scale_factor=2.0, mode=self.fpn_interp_model,
                    align_corners=None if self.fpn_interp_model == "nearest" else False,
                    antialias=False,
                )
                prev = lateral + top_down
            else:
                prev = lateral
            out[i] = prev
            pos[i] = self.position_encoding(prev).to(prev.dtype)
        return out, pos


class ImageEncoder(nn.Module):
    """Trunk + neck; ``scalp`` coarsest levels are dropped from the output."""

    def __init__(self, trunk: Hiera, neck: FpnNeck, scalp: int = 1) -> None:
        super().__init__()
        if trunk.channel_list != neck.backbone_channel_list:
            raise ValueError(f"trunk channels {trunk.channel_list} do not match the neck's "
                             f"{neck.backbone_channel_list}")
        self.trunk = trunk
        self.neck = neck
        self.scalp = scalp

    def forward(self, x: Tensor) -> BackboneOutput:
        """x (B, 3, S, S) normalised image -> :class:`BackboneOutput` (3 levels), computed
        in the weights' dtype (models/precision.py), returned in ``x``'s dtype."""
        compute = self.trunk.patch_embed.proj.weight.dtype
        features, pos = self.neck(self.trunk(x.to(compute)))
        if self.scalp > 0:
            features, pos = features[: -self.scalp], pos[: -self.scalp]
        return BackboneOutput([f.to(x.dtype) for f in features], [p.to(x.dtype) for p in pos])

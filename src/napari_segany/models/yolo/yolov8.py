"""The YOLOv8(-seg) network: CSP-Darknet backbone, PAN neck, Detect/Segment head.

``self.model`` is the 23-entry layer list of ``yolov8-seg.yaml`` so that state-dict keys
(``model.0.conv.weight`` ... ``model.22.proto.cv3.bn.bias``) equal the official ones.
The graph (which layer feeds which) is the fixed yolov8 graph, written out in ``forward``.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from .blocks import C2f, SPPF, Concat, Conv
from .head import Detect, Segment


class YoloOutput(NamedTuple):
    """pred: (B, 4 + nc [+ nm], A) rows cx, cy, w, h (input px), class scores, mask coefficients.
    protos: (B, nm, H/4, W/4) mask prototypes, or None (no proto branch)."""

    pred: Tensor
    protos: Tensor | None


def layer_channels(width: float, max_channels: int) -> dict[int, int]:
    """Output channels of the yaml's nominal widths (64..1024) at this scale."""
    return {c: _make_divisible(min(c, max_channels) * width, 8) for c in (64, 128, 256, 512, 1024)}


def _make_divisible(x: float, divisor: int) -> int:
    return int(-(-x // divisor) * divisor)  # ceil(x / divisor) * divisor, as ultralytics


def repeats(n: int, depth: float) -> int:
    """Bottleneck count of a C2f of nominal depth n (ultralytics parse_model rule)."""
    return max(round(n * depth), 1) if n > 1 else n


class YOLOv8(nn.Module):
    """YOLOv8 at any scale.  Input (B, 3, H, W) float in [0, 1], H and W multiples of 32.

    Computes in the dtype of its weights (float32, or bfloat16 after
    ``models.precision.set_encoder_precision``); the head decodes boxes and returns its
    outputs in float32 (see ``head.py``).
    """

    stride = 32
    precision = "fp32"  # set by models.precision.set_encoder_precision

    def __init__(self, depth: float, width: float, max_channels: int, nc: int = 1,
                 reg_max: int = 16, head: str = "segment", nm: int = 32, npr: int = 256,
                 has_proto: bool = True):
        super().__init__()
        c = layer_channels(width, max_channels)
        d3, d6 = repeats(3, depth), repeats(6, depth)
        layers = [
            Conv(3, c[64], 3, 2), Conv(c[64], c[128], 3, 2), C2f(c[128], c[128], d3, True),   # 0-2
            Conv(c[128], c[256], 3, 2), C2f(c[256], c[256], d6, True),                       # 3-4 P3
            Conv(c[256], c[512], 3, 2), C2f(c[512], c[512], d6, True),                       # 5-6 P4
            Conv(c[512], c[1024], 3, 2), C2f(c[1024], c[1024], d3, True), SPPF(c[1024], c[1024], 5),  # 7-9
            nn.Upsample(scale_factor=2, mode="nearest"), Concat(),                          # 10-11
            C2f(c[1024] + c[512], c[512], d3),                                               # 12
            nn.Upsample(scale_factor=2, mode="nearest"), Concat(),                          # 13-14
            C2f(c[512] + c[256], c[256], d3),                                                # 15 out P3
            Conv(c[256], c[256], 3, 2), Concat(), C2f(c[256] + c[512], c[512], d3),          # 16-18 out P4
            Conv(c[512], c[512], 3, 2), Concat(), C2f(c[512] + c[1024], c[1024], d3),        # 19-21 out P5
        ]
        ch = (c[256], c[512], c[1024])
        if head == "segment":
            layers.append(Segment(nc, ch, reg_max, nm, npr, has_proto))
        elif head == "detect":
            layers.append(Detect(nc, ch, reg_max))
        else:
            raise ValueError(f"head must be 'segment' or 'detect', got {head!r}.")
        self.model = nn.ModuleList(layers)
        self.channels_last = False

    @property
    def head(self) -> Detect:
        return self.model[22]

    def features(self, x: Tensor) -> list[Tensor]:
        """(B, 3, H, W) -> the three neck outputs at strides 8, 16, 32."""
        m = self.model
        x = m[1](m[0](x))
        x = m[2](x)
        p3 = m[4](m[3](x))
        p4 = m[6](m[5](p3))
        p5 = m[9](m[8](m[7](p4)))
        n12 = m[12](m[11]([m[10](p5), p4]))
        o15 = m[15](m[14]([m[13](n12), p3]))
        o18 = m[18](m[17]([m[16](o15), n12]))
        o21 = m[21](m[20]([m[19](o18), p5]))
        return [o15, o18, o21]

    def forward(self, x: Tensor, masks: bool = True) -> YoloOutput:
        """x: (B, 3, H, W) float32 in [0, 1] (letterboxed, H, W multiples of 32).
        ``masks=False``: boxes and scores only (no mask coefficients, no prototypes).
        Outputs are float32 whatever the weights' dtype."""
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % 32 or x.shape[3] % 32:
            raise ValueError(f"Expected (B, 3, H, W) with H, W multiples of 32, got {tuple(x.shape)}.")
        x = x.to(self.model[0].conv.weight.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        feats = self.features(x)
        if isinstance(self.head, Segment):
            return YoloOutput(*self.head(feats, masks=masks))
        return YoloOutput(*self.head(feats))

    @torch.no_grad()
    def fuse(self) -> "YOLOv8":
        """Fold every BatchNorm into its convolution (inference only; call after eval())."""
        for module in self.modules():
            if isinstance(module, Conv):
                module.fuse()
        return self

    def set_channels_last(self, enabled: bool = True) -> "YOLOv8":
        """Channels-last memory for weights and inputs: ~20 % less CPU time per forward, but
        results change at float32 rounding level (enough to reorder near-tied random-weight
        scores in the parity cases, so it is off by default)."""
        fmt = torch.channels_last if enabled else torch.contiguous_format
        self.to(memory_format=fmt)
        self.channels_last = enabled
        return self

    def prepare_for_inference(self, channels_last: bool = False) -> "YOLOv8":
        """Hook called by ``engine.weights.load_model`` after loading: fuse Conv+BN
        (bit-identical to the official fused float32 model), optionally channels-last."""
        self.fuse()
        return self.set_channels_last(channels_last)

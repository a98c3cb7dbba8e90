"""YOLOv8 Detect / Segment heads (anchor-free, DFL box regression).

Output layout follows ultralytics: for A anchors over the three levels (P3 row-major,
then P4, then P5), ``pred`` is (B, 4 + nc [+ nm], A) with rows
cx, cy, w, h (input pixels), sigmoid class scores, then raw mask coefficients.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .blocks import DFL, Conv, Proto


def _branch(c_in: int, c_mid: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(Conv(c_in, c_mid, 3), Conv(c_mid, c_mid, 3), nn.Conv2d(c_mid, c_out, 1))


def make_anchors(feats: list[Tensor], strides: tuple[float, ...], offset: float = 0.5):
    """Anchor centres (A, 2) as x, y in feature cells (+0.5) and their strides (A, 1)."""
    points, stride_list = [], []
    for feat, stride in zip(feats, strides):
        h, w = feat.shape[-2:]
        sx = torch.arange(w, device=feat.device, dtype=feat.dtype) + offset
        sy = torch.arange(h, device=feat.device, dtype=feat.dtype) + offset
        sy, sx = torch.meshgrid(sy, sx, indexing="ij")
        points.append(torch.stack((sx, sy), -1).view(-1, 2))
        stride_list.append(torch.full((h * w, 1), stride, dtype=feat.dtype, device=feat.device))
    return torch.cat(points), torch.cat(stride_list)


def dist2bbox_xywh(distance: Tensor, anchors: Tensor) -> Tensor:
    """(B, 4, A) left/top/right/bottom distances around (1, 2, A) anchors -> (B, 4, A) cx, cy, w, h."""
    lt, rb = distance.chunk(2, 1)
    x1y1 = anchors - lt
    x2y2 = anchors + rb
    return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1)


class Detect(nn.Module):
    """Box branch cv2 (4*reg_max DFL logits) and class branch cv3 per level, then DFL decoding."""

    strides = (8.0, 16.0, 32.0)

    def __init__(self, nc: int, ch: tuple[int, ...], reg_max: int = 16):
        super().__init__()
        self.nc, self.nl, self.reg_max = nc, len(ch), reg_max
        self.no = nc + 4 * reg_max
        c2 = max(16, ch[0] // 4, 4 * reg_max)
        c3 = max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(_branch(c, c2, 4 * reg_max) for c in ch)
        self.cv3 = nn.ModuleList(_branch(c, c3, nc) for c in ch)
        self.dfl = DFL(reg_max) if reg_max > 1 else nn.Identity()

    def detect(self, feats: list[Tensor]) -> Tensor:
        """Level features -> (B, 4 + nc, A) float32: decoded xywh boxes in input pixels +
        class scores.  The branch convolutions run in the weights' dtype; the decoding is
        float32 (in bfloat16, anchors and box sides near 1024 px would step by 4-8 px)."""
        b = feats[0].shape[0]
        maps = [torch.cat((self.cv2[i](f), self.cv3[i](f)), 1).float() for i, f in enumerate(feats)]
        anchors, strides = (t.transpose(0, 1) for t in make_anchors(maps, self.strides))
        x_cat = torch.cat([m.reshape(b, self.no, -1) for m in maps], 2)
        box, cls = x_cat.split((4 * self.reg_max, self.nc), 1)
        dbox = dist2bbox_xywh(self.dfl(box), anchors.unsqueeze(0)) * strides
        return torch.cat((dbox, cls.sigmoid()), 1)

    def forward(self, feats: list[Tensor]) -> tuple[Tensor, Tensor | None]:
        return self.detect(feats), None


class Segment(Detect):
    """Detect + mask coefficients (cv4) + optionally the prototype branch (FastSAM).

    The MobileSAMv2 object-aware model keeps cv4 but has no ``proto`` (``has_proto=False``).
    """

    def __init__(self, nc: int, ch: tuple[int, ...], reg_max: int = 16, nm: int = 32,
                 npr: int = 256, has_proto: bool = True):
        super().__init__(nc, ch, reg_max)
        self.nm, self.npr = nm, npr
        if has_proto:
            self.proto = Proto(ch[0], npr, nm)
        c4 = max(ch[0] // 4, nm)
        self.cv4 = nn.ModuleList(_branch(c, c4, nm) for c in ch)

    @property
    def has_proto(self) -> bool:
        return hasattr(self, "proto")

    def forward(self, feats: list[Tensor], masks: bool = True) -> tuple[Tensor, Tensor | None]:
        """Returns pred (B, 4 + nc + nm, A) and protos (B, nm, H/4, W/4) (None without a proto
        branch).  ``masks=False`` skips both mask branches: pred (B, 4 + nc, A), protos None.
        Both are float32 (masks are assembled from 32 coefficient x prototype products)."""
        protos = self.proto(feats[0]).float() if masks and self.has_proto else None
        pred = self.detect(feats)
        if masks:
            b = feats[0].shape[0]
            mc = torch.cat([self.cv4[i](f).reshape(b, self.nm, -1) for i, f in enumerate(feats)], 2)
            pred = torch.cat((pred, mc.float()), 1)
        return pred, protos

"""SAM 2's fixed position encodings: 2D sine maps, 1D sine codes and axial rotary (RoPE).

None of them has weights.  Float order of operations follows sam2 1.1.0, so the encodings
are bit-identical to the official ones in float32.  Grids are (H, W) = (rows, columns);
channel halves are (y, x) for the 2D sine map and (x, y) for RoPE, as in the official code.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _inverse_frequencies(num_feats: int, temperature: float, device=None) -> Tensor:
    """temperature ** (2 * (i // 2) / num_feats) for i < num_feats (paired sin/cos rates)."""
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=device)
    return temperature ** (2 * (dim_t // 2) / num_feats)


class PositionEmbeddingSine(nn.Module):
    """DETR-style 2D sine encoding of a feature map's grid (normalised to [0, 2 pi]).

    num_pos_feats: output channels C (half for y, half for x).  ``forward(x)`` reads only
    the shape of x (B, *, H, W) and returns (B, C, H, W) float32 (a broadcast view of one
    cached map: the encoding depends on (H, W) only).
    """

    def __init__(self, num_pos_feats: int, temperature: int = 10000) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError(f"num_pos_feats must be even, got {num_pos_feats}")
        self.num_pos_feats = num_pos_feats // 2
        self.temperature = temperature
        self.scale = 2 * math.pi
        self._cache: dict[tuple, Tensor] = {}

    def _grid(self, h: int, w: int, device) -> Tensor:
        eps = 1e-6
        y = torch.arange(1, h + 1, dtype=torch.float32, device=device)
        x = torch.arange(1, w + 1, dtype=torch.float32, device=device)
        y = y / (y[-1:] + eps) * self.scale
        x = x / (x[-1:] + eps) * self.scale
        dim_t = _inverse_frequencies(self.num_pos_feats, self.temperature, device)
        pos_y = self._interleave(y[:, None] / dim_t)  # (H, F)
        pos_x = self._interleave(x[:, None] / dim_t)  # (W, F)
        f = self.num_pos_feats
        return torch.cat([pos_y[:, None, :].expand(h, w, f), pos_x[None, :, :].expand(h, w, f)],
                         dim=-1).permute(2, 0, 1)

    @staticmethod
    def _interleave(phases: Tensor) -> Tensor:
        """(N, F) phases -> [sin(p0), cos(p1), sin(p2), cos(p3), ...]."""
        return torch.stack([phases[:, 0::2].sin(), phases[:, 1::2].cos()], dim=2).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        key = (h, w, x.device)
        if key not in self._cache:
            with torch.inference_mode(False), torch.no_grad():
                self._cache[key] = self._grid(h, w, x.device)
        return self._cache[key][None].expand(x.shape[0], -1, -1, -1)


def sine_1d(positions: Tensor, dim: int, temperature: float = 10000) -> Tensor:
    """(N,) float positions -> (N, dim) [sin | cos] codes (SAM 2's object-pointer time code)."""
    dim_t = _inverse_frequencies(dim // 2, temperature, positions.device)
    phases = positions.unsqueeze(-1) / dim_t
    return torch.cat([phases.sin(), phases.cos()], dim=-1)


def axial_rope(dim: int, end_x: int, end_y: int, theta: float = 10000.0) -> Tensor:
    """Rotations of a row-major end_y x end_x grid: (end_x * end_y, dim / 2) complex64.

    The first dim/4 complex channels rotate with the column (x), the last dim/4 with the row.
    """
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 4)[: dim // 4].float() / dim))
    t = torch.arange(end_x * end_y, dtype=torch.float32)
    t_x = t % end_x
    t_y = torch.div(t, end_x, rounding_mode="floor")
    angles = torch.cat([torch.outer(t_x, freqs), torch.outer(t_y, freqs)], dim=-1)
    return torch.polar(torch.ones_like(angles), angles)


def rotate(x: Tensor, rope: Tensor) -> Tensor:
    """Apply rotations (N, d/2) to x (..., r*N, d) (channel pairs (2i, 2i+1) are complex
    numbers); a sequence r times longer than the table repeats it (memory of r frames)."""
    n = rope.shape[0]
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-2], -1, n, x.shape[-1] // 2, 2))
    out = torch.view_as_real(pairs * rope).flatten(-2)
    return out.reshape(x.shape).type_as(x)

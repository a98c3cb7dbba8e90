"""Hiera trunk of SAM 2's image encoder (Ryali et al. 2023; "Hiera" in SAM 2 fig. 2).

A hierarchical ViT on channels-last tokens (B, H, W, C): a 7x7/4 patch embedding, then
four stages of :class:`MultiScaleBlock`.  The first block of stages 2-4 halves the
resolution with a 2x2 max-pool of the *queries* inside its attention (and doubles the
channels); blocks attend within non-overlapping windows, except a few global blocks.  The
absolute position embedding is a bicubic-resized background table plus a tiled window
table (Bolya et al. 2023, "window positional embedding"), as in sam2 1.1.0.

Output: one (B, C_i, H_i, W_i) map per stage, strides 4, 8, 16, 32 of the input.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..sam.common import MLP


def window_partition(x: Tensor, window: int) -> tuple[Tensor, tuple[int, int]]:
    """(B, H, W, C) -> (B * nWin, window, window, C) zero-padded windows, and (Hp, Wp).

    The zero padding (bottom/right) takes part in the attention as the official code does.
    """
    b, h, w, c = x.shape
    pad_h, pad_w = (window - h % window) % window, (window - w % window) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c), (hp, wp)


def window_unpartition(windows: Tensor, window: int, padded: tuple[int, int],
                       size: tuple[int, int]) -> Tensor:
    """Inverse of :func:`window_partition`: windows -> (B, H, W, C) without the padding."""
    (hp, wp), (h, w) = padded, size
    b = windows.shape[0] // (hp * wp // window // window)
    x = windows.reshape(b, hp // window, wp // window, window, window, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, :h, :w] if (hp > h or wp > w) else x


def _pool(x: Tensor, pool: nn.Module | None) -> Tensor:
    """2x2 max-pool of channels-last (B, H, W, C) tokens (identity without a pool)."""
    if pool is None:
        return x
    return pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class PatchEmbed(nn.Module):
    """7x7 convolution with stride 4: (B, 3, S, S) image -> (B, S/4, S/4, C) tokens."""

    def __init__(self, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    """Multi-head self-attention of (B, H, W, dim) tokens -> (B, H', W', dim_out); with
    ``q_pool`` the queries (hence the output) are max-pooled to H/2 x W/2."""

    def __init__(self, dim: int, dim_out: int, num_heads: int,
                 q_pool: nn.Module | None = None) -> None:
        super().__init__()
        self.dim, self.dim_out, self.num_heads = dim, dim_out, num_heads
        self.q_pool = q_pool
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1)
        q, k, v = torch.unbind(qkv, 2)  # (B, HW, heads, d)
        if self.q_pool is not None:
            q = _pool(q.reshape(b, h, w, -1), self.q_pool)
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, self.num_heads, -1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                             v.transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))


class MultiScaleBlock(nn.Module):
    """Pre-norm transformer block on (B, H, W, dim) tokens, windowed (``window_size`` > 0)
    or global; a stage-changing block projects the shortcut to ``dim_out`` and pools it
    together with the queries (``q_stride``)."""

    def __init__(self, dim: int, dim_out: int, num_heads: int, mlp_ratio: float = 4.0,
                 q_stride: tuple[int, int] | None = None, window_size: int = 0) -> None:
        super().__init__()
        self.dim, self.dim_out = dim, dim_out
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.window_size = window_size
        self.q_stride = q_stride
        self.pool = nn.MaxPool2d(kernel_size=q_stride, stride=q_stride) if q_stride else None
        self.attn = MultiScaleAttention(dim, dim_out, num_heads, q_pool=self.pool)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, 2, act=F.gelu)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = _pool(self.proj(x), self.pool)
        window = self.window_size
        if window > 0:
            size = x.shape[1:3]
            x, padded = window_partition(x, window)
        x = self.attn(x)
        if window > 0:
            if self.q_stride:  # the windows shrank with the queries
                window = self.window_size // self.q_stride[0]
                size = shortcut.shape[1:3]
                padded = tuple(s + (window - s % window) % window for s in size)
            x = window_unpartition(x, window, padded, size)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class Hiera(nn.Module):
    """Hiera trunk.  ``stages``: blocks per stage; ``global_att_blocks``: indices of the
    blocks with global attention; ``window_spec``: window side per stage (a stage's first
    block still uses the previous stage's window, as in the official code)."""

    def __init__(
        self, embed_dim: int = 96, num_heads: int = 1, stages: tuple[int, ...] = (2, 3, 16, 3),
        global_att_blocks: tuple[int, ...] = (12, 16, 20),
        window_pos_embed_bkg_spatial_size: tuple[int, int] = (14, 14),
        window_spec: tuple[int, ...] = (8, 4, 14, 7), q_stride: tuple[int, int] = (2, 2),
        q_pool: int = 3, dim_mul: float = 2.0, head_mul: float = 2.0,
    ) -> None:
        super().__init__()
        if len(stages) != len(window_spec):
            raise ValueError("stages and window_spec must have the same length")
        self.stage_ends = [sum(stages[:i]) - 1 for i in range(1, len(stages) + 1)]
        q_pool_blocks = [end + 1 for end in self.stage_ends[:-1]][:q_pool]
        self.patch_embed = PatchEmbed(embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *window_pos_embed_bkg_spatial_size))
        self.pos_embed_window = nn.Parameter(
            torch.zeros(1, embed_dim, window_spec[0], window_spec[0]))
        self._pos_cache: dict = {}  # inference: the last position embedding (not a weight)
        self.blocks = nn.ModuleList()
        stage = 0
        for i in range(sum(stages)):
            dim_out = embed_dim
            window = 0 if i in global_att_blocks else window_spec[stage]
            if i - 1 in self.stage_ends:
                dim_out, num_heads, stage = int(embed_dim * dim_mul), int(num_heads * head_mul), stage + 1
            self.blocks.append(MultiScaleBlock(
                embed_dim, dim_out, num_heads,
                q_stride=q_stride if i in q_pool_blocks else None, window_size=window,
            ))
            embed_dim = dim_out
        self.channel_list = [self.blocks[i].dim_out for i in self.stage_ends[::-1]]

    def _pos_embed(self, h: int, w: int) -> Tensor:
        """(1, h, w, C): bicubic background table + the window table tiled over the grid.

        It depends on the weights and (h, w) only, so inference reuses it (a bicubic
        resize to 256 x 256 costs ~0.15 s per frame on a CPU); the key holds the weights'
        storage and version, so loading or casting them computes it again."""
        if torch.is_grad_enabled() and self.pos_embed.requires_grad:
            return self._pos_embed_uncached(h, w)  # training: keep the autograd graph
        key = (h, w) + tuple((p.data_ptr(), p.dtype, p.device, p._version)
                             for p in (self.pos_embed, self.pos_embed_window))
        if self._pos_cache.get("key") != key:
            with torch.inference_mode(False), torch.no_grad():
                self._pos_cache = {"key": key, "pos": self._pos_embed_uncached(h, w)}
        return self._pos_cache["pos"]

    def _pos_embed_uncached(self, h: int, w: int) -> Tensor:
        pos = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")
        win = self.pos_embed_window
        pos = pos + win.tile([p // q for p, q in zip(pos.shape, win.shape)])
        return pos.permute(0, 2, 3, 1)

    def forward(self, x: Tensor) -> list[Tensor]:
        """x (B, 3, S, S) -> [(B, C, S/4, S/4), (B, 2C, S/8, S/8), (B, 4C, S/16, S/16),
        (B, 8C, S/32, S/32)] (stage outputs, highest resolution first)."""
        x = self.patch_embed(x)
        x = x + self._pos_embed(*x.shape[1:3]).to(x.dtype)  # float32 tables (precision.py)
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs

"""SAM's image encoder: a plain ViT with windowed + global attention and a 256-channel neck.

Tokens are kept channels-last, ``(B, H, W, C)`` with ``H = W = img_size / 16``, between
blocks.  Attention runs through ``F.scaled_dot_product_attention`` with the decomposed
relative-position terms passed as an additive ``attn_mask``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import LayerNorm2d, MLPBlock

#: Largest relative-position bias (bytes) built at once.  Global attention on a 64 x 64 grid
#: would need 12 x 4096 x 4096 floats (800 MB, 1 GB for ViT-H), so queries go in row chunks.
#: Below glibc's 32 MB mmap threshold a chunk reuses heap pages; a fresh 800 MB buffer
#: costs more in page faults than filling it (2-core Linux VM: bias 3-9x faster,
#: whole ViT-B encoder ~5% less CPU time than one unchunked bias).
_BIAS_BUDGET_BYTES = 30 * 2**20


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` convolution: (B, 3, S, S) -> (B, S/p, S/p, C)."""

    def __init__(self, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        # contiguous channels-last so every LayerNorm/Linear below reads memory in order
        return self.proj(x).permute(0, 2, 3, 1).contiguous()


def _rel_pos_table(size: int, rel_pos: Tensor) -> Tensor:
    """(2*size-1, d) table -> (size, size, d): entry [i, j] is the embedding of offset i - j."""
    idx = torch.arange(size, device=rel_pos.device)
    return rel_pos[idx[:, None] - idx[None, :] + (size - 1)]


def _rel_pos_bias(q: Tensor, rh: Tensor, rw: Tensor, width: int) -> Tensor:
    """Decomposed relative-position bias (MViTv2), as used by SAM.

    q: (B, heads, rows * width, d) *unscaled* queries of ``rows`` grid rows;
    rh: (rows, kh, d) height table of those rows; rw: (width, kw, d) width table.
    Returns (B, heads, rows * width, kh * kw): bias[.., (i, j), (k, l)] = q.rh[i, k] + q.rw[j, l].
    """
    b, heads, n, d = q.shape
    rows, kh, kw = n // width, rh.shape[1], rw.shape[1]
    r_q = q.unflatten(2, (rows, width))  # (B, heads, rows, width, d)
    rel_h = r_q @ rh.transpose(1, 2)  # (B, heads, rows, width, kh)
    rel_w = (r_q.transpose(2, 3) @ rw.transpose(1, 2)).transpose(2, 3)  # (.., rows, width, kw)
    if torch.is_grad_enabled() and (rel_h.requires_grad or rel_w.requires_grad):
        return (rel_h.unsqueeze(-1) + rel_w.unsqueeze(-2)).reshape(b, heads, n, kh * kw)
    # explicit contiguous output: broadcasting would otherwise pick a permuted layout
    bias = q.new_empty(b, heads, rows, width, kh, kw)
    torch.add(rel_h.unsqueeze(-1), rel_w.unsqueeze(-2), out=bias)
    return bias.view(b, heads, n, kh * kw)


class Attention(nn.Module):
    """Multi-head self-attention with decomposed relative positions on an h x w grid."""

    def __init__(self, dim: int, num_heads: int, input_size: tuple[int, int]) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, h: int, w: int) -> Tensor:
        """q, k, v: (B, heads, h*w, d) on one h x w grid (image or window) -> same shape."""
        # the tables stay float32 (models/precision.py); the bias is built in q's dtype
        rh = _rel_pos_table(h, self.rel_pos_h).to(q.dtype)
        rw = _rel_pos_table(w, self.rel_pos_w).to(q.dtype)
        row_bytes = q.shape[0] * q.shape[1] * w * h * w * q.element_size()
        n_chunks = math.ceil(h / max(1, _BIAS_BUDGET_BYTES // row_bytes))
        if n_chunks == 1:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=_rel_pos_bias(q, rh, rw, w))
        out = torch.empty_like(q, memory_format=torch.contiguous_format)
        step = math.ceil(h / n_chunks)
        for r0 in range(0, h, step):
            r1 = min(h, r0 + step)
            qs = q[:, :, r0 * w : r1 * w]
            bias = _rel_pos_bias(qs, rh[r0:r1], rw, w)
            out[:, :, r0 * w : r1 * w] = F.scaled_dot_product_attention(qs, k, v, attn_mask=bias)
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Global attention. x: (B, H, W, C) -> (B, H, W, C)."""
        b, h, w, c = x.shape
        qkv = self.qkv(x).view(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        out = self._attend(*qkv.unbind(0), h, w)  # (B, heads, h*w, d)
        return self.proj(out.transpose(1, 2).reshape(b, h, w, c))

    def forward_windows(self, x: Tensor, ws: int) -> Tensor:
        """Attention inside non-overlapping ws x ws windows. x: (B, H, W, C) -> same.

        The official code zero-pads the *normalised* tokens to a multiple of ``ws`` and
        projects everything.  A zero token projects exactly to the qkv bias, so we project
        only the real tokens, fill the padding with the bias, and drop the padded outputs
        before the output projection: same result, ~16% fewer qkv/proj FLOPs at 64 x 64.
        """
        b, h, w, c = x.shape
        nh, nw = -(-h // ws), -(-w // ws)
        qkv = self.qkv(x)
        if nh * ws != h or nw * ws != w:
            padded = qkv.new_empty(b, nh * ws, nw * ws, 3 * c)
            padded[:, :h, :w] = qkv
            padded[:, h:] = self.qkv.bias
            padded[:, :h, w:] = self.qkv.bias
            qkv = padded
        heads = self.num_heads
        # (B, nh, ws, nw, ws, 3, heads, d) -> (3, B*nh*nw, heads, ws*ws, d)
        qkv = qkv.view(b, nh, ws, nw, ws, 3, heads, c // heads).permute(5, 0, 1, 3, 6, 2, 4, 7)
        qkv = qkv.reshape(3, b * nh * nw, heads, ws * ws, c // heads)
        out = self._attend(*qkv.unbind(0), ws, ws)
        out = out.view(b, nh, nw, heads, ws, ws, c // heads).permute(0, 1, 4, 2, 5, 3, 6)
        out = out.reshape(b, nh * ws, nw * ws, c)[:, :h, :w]
        return self.proj(out)


class Block(nn.Module):
    """Pre-norm transformer block; ``window_size == 0`` means global attention."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float, window_size: int,
        input_size: tuple[int, int],
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        attn_size = input_size if window_size == 0 else (window_size, window_size)
        self.attn = Attention(dim, num_heads, attn_size)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio))
        self.window_size = window_size

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm1(x)
        y = self.attn.forward_windows(y, self.window_size) if self.window_size else self.attn(y)
        x = x + y
        return x + self.mlp(self.norm2(x))


class ImageEncoderViT(nn.Module):
    """ViT image encoder of SAM: (B, 3, S, S) normalised images -> (B, out_chans, S/16, S/16)
    (channels-last memory format), in the input's dtype.

    Computes in the dtype of its weights (float32, or bfloat16 after
    ``models.precision.set_encoder_precision``; LayerNorms and positional tables stay float32).

    ``global_attn_indexes`` lists the blocks with global attention; the others attend
    inside ``window_size`` windows.  Official configurations (S = 1024):
    ViT-B 768/12/12 heads [2, 5, 8, 11], ViT-L 1024/24/16 [5, 11, 17, 23],
    ViT-H 1280/32/16 [7, 15, 23, 31].
    """

    def __init__(
        self, img_size: int = 1024, patch_size: int = 16, in_chans: int = 3,
        embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
        out_chans: int = 256, window_size: int = 14, global_attn_indexes: tuple[int, ...] = (),
    ) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(
                f"img_size {img_size} must be a multiple of the patch size {patch_size}"
            )
        self.img_size = img_size
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, embed_dim))
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio,
                  0 if i in global_attn_indexes else window_size, (grid, grid))
            for i in range(depth)
        )
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dim, out_chans, kernel_size=1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def forward(self, x: Tensor) -> Tensor:
        out_dtype, dtype = x.dtype, self.patch_embed.proj.weight.dtype
        x = self.patch_embed(x.to(dtype)) + self.pos_embed.to(dtype)
        for blk in self.blocks:
            x = blk(x)
        # (B, C, h, w) with channels-last strides, as the neck computes it: the decoder reads
        # the embedding as (B, h*w, C) tokens, so this layout saves a transpose per click
        x = self.neck(x.permute(0, 3, 1, 2))
        return x.to(out_dtype, memory_format=torch.channels_last)

"""TinyViT's transformer parts: Mlp, window Attention with bias tables, TinyViTBlock, BasicLayer."""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .conv_blocks import Conv2d_BN, PatchMerging
from .fast_ops import DerivedCacheMixin, chunk_len, fast_conv, fast_linear

class Mlp(nn.Module):
    """LayerNorm, fc1, GELU, fc2 on tokens (..., C)."""

    def __init__(self, in_features: int, hidden_features: int | None = None,
                 out_features: int | None = None, act_layer: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.norm = nn.LayerNorm(in_features)
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.act = act_layer()

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))

    def forward_fast_residual_(self, x: Tensor) -> Tensor:
        """x += mlp(x) in place, for contiguous tokens x (..., C); returns x.

        Runs in chunks of tokens so the 4C-wide hidden activation stays small and cached.
        """
        flat = x.view(-1, x.shape[-1])
        step = chunk_len(x, self.fc1.out_features, flat.shape[0])
        for i in range(0, flat.shape[0], step):
            xi = flat[i:i + step]
            t = F.layer_norm(xi, xi.shape[-1:], self.norm.weight, self.norm.bias, self.norm.eps)
            h = fast_linear(t, self.fc1.weight, self.fc1.bias, gelu=True)
            xi.copy_(fast_linear(h, self.fc2.weight, self.fc2.bias, residual=xi))
        return x


def _relative_offset_index(resolution: tuple[int, int]) -> tuple[Tensor, int]:
    """(N, N) index of |dy|, |dx| offsets between the N = h*w window positions, numbered in
    order of first appearance (official order); and the number of distinct offsets."""
    points = list(itertools.product(range(resolution[0]), range(resolution[1])))
    offsets: dict[tuple[int, int], int] = {}
    idxs = []
    for p1 in points:
        for p2 in points:
            off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
            idxs.append(offsets.setdefault(off, len(offsets)))
    n = len(points)
    # an explicit device: a network built on the meta device (weights loaded by assignment)
    # still gets this buffer, which no checkpoint holds
    return torch.tensor(idxs, dtype=torch.long, device="cpu").view(n, n), len(offsets)


class Attention(DerivedCacheMixin, nn.Module):
    """Multi-head self-attention within a window, with learned per-offset biases.

    Tokens (B, N, C) -> (B, N, C); N = window positions.  ``qkv`` output is laid out per
    head as [q (key_dim), k (key_dim), v (d)] (official layout).
    """

    def __init__(self, dim: int, key_dim: int, num_heads: int = 8, attn_ratio: float = 4,
                 resolution: tuple[int, int] = (14, 14)) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = key_dim ** -0.5
        self.key_dim = key_dim
        self.nh_kd = key_dim * num_heads
        self.d = int(attn_ratio * key_dim)
        self.dh = self.d * num_heads
        self.attn_ratio = attn_ratio
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, self.dh + self.nh_kd * 2)
        self.proj = nn.Linear(self.dh, dim)
        idxs, n_offsets = _relative_offset_index(resolution)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, n_offsets))
        self.register_buffer("attention_bias_idxs", idxs, persistent=False)

    def bias_table(self) -> Tensor:
        """(num_heads, N, N) attention bias in the qkv weight's dtype, gathered from
        ``attention_biases`` (float32 under bfloat16, see ``models/precision.py``; cached).

        Always up to date (keyed on the parameter's version), unlike the official
        ``ab`` attribute set by ``train(False)``.
        """
        dtype = self.qkv.weight.dtype

        def compute():
            return self.attention_biases[:, self.attention_bias_idxs].to(dtype).contiguous()

        if torch.is_grad_enabled() and self.attention_biases.requires_grad:
            return self.attention_biases[:, self.attention_bias_idxs].to(dtype)  # differentiable
        return self._derived("bias", (self.attention_biases, self.qkv.weight), compute)

    def qkv_scaled(self) -> tuple[Tensor, Tensor]:
        """qkv weight (3C', C) and bias with the q rows pre-multiplied by ``scale`` (cached),
        so q @ k^T needs no extra pass over the attention matrix.  The product is taken in
        float32 (a bfloat16 ``scale`` would be off by up to 0.4 %) and cast back."""
        weight, bias = self.qkv.weight, self.qkv.bias

        def compute():
            per_head = 2 * self.key_dim + self.d
            scale = torch.ones(per_head, dtype=torch.float32, device=weight.device)
            scale[: self.key_dim] = self.scale
            scale = scale.repeat(self.num_heads)
            return ((weight * scale[:, None]).to(weight.dtype).contiguous(),
                    (bias * scale).to(bias.dtype).contiguous())

        return self._derived("qkv_scaled", (weight, bias), compute)

    def forward(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        x = self.norm(x)
        qkv = self.qkv(x)
        q, k, v = qkv.view(b, n, self.num_heads, -1).split(
            [self.key_dim, self.key_dim, self.d], dim=3)
        q, k, v = q.permute(0, 2, 1, 3), k.permute(0, 2, 1, 3), v.permute(0, 2, 1, 3)
        attn = (q @ k.transpose(-2, -1)) * self.scale + self.bias_table()
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(b, n, self.dh)
        return self.proj(x)

    def forward_band(self, xp: Tensor, ws: int) -> Tensor:
        """xp + attn(windows of xp) for one band xp (B, ws, nW*ws, C) of padded tokens.

        Returns (B, ws, nW*ws, C).  q @ k^T, bias and softmax run on groups of windows
        whose attention matrices total ~CHUNK_BYTES (cache-resident; bit-identical to one go).
        Same code in bfloat16 (xp's dtype).  Not ``F.scaled_dot_product_attention``: with a
        (heads, N, N) mask shared by the windows, the CPU flash kernel is 2-4x slower than
        these bmm calls for 49/196-token windows (float32 and bfloat16), and its float32
        scores did not change bf16 masks (MobileSAM on the parity image: same IoUs).
        """
        b, _, pw, c = xp.shape
        nw, heads, kd, d = pw // ws, self.num_heads, self.key_dim, self.d
        n = ws * ws
        t = F.layer_norm(xp, (c,), self.norm.weight, self.norm.bias, self.norm.eps)
        wqkv, bqkv = self.qkv_scaled()
        qkv = fast_linear(t, wqkv, bqkv)  # (B, ws, pW, heads * (2 kd + d))
        # windows: (B, ws, nW, ws, heads, e) -> (B*nW, heads, N, e)
        qkv = qkv.view(b, ws, nw, ws, heads, 2 * kd + d)
        if xp.dtype == torch.float32:  # one copy; MKL's sgemm reads the strided q, k, v
            qkv = qkv.permute(0, 2, 4, 1, 3, 5).reshape(b * nw, heads, n, 2 * kd + d)
            q, k, v = qkv.split([kd, kd, d], dim=3)
        else:  # oneDNN's bf16 bmm would copy strided operands once per group: copy up front
            q, k, v = (part.permute(0, 2, 4, 1, 3, 5).reshape(b * nw, heads, n, -1)
                       for part in qkv.split([kd, kd, d], dim=5))
        bias = self.bias_table()
        o = torch.empty(b * nw, heads, n, d, dtype=xp.dtype, device=xp.device)
        group = chunk_len(xp, heads * n * n, b * nw)  # windows per group
        for i in range(0, b * nw, group):
            a = torch.matmul(q[i:i + group], k[i:i + group].transpose(-2, -1))  # scaled q
            a += bias
            a = a.softmax(dim=-1)
            torch.matmul(a, v[i:i + group], out=o[i:i + group])
        # back to (B, ws, pW, heads*d): the second copy
        o = o.view(b, nw, heads, ws, ws, d).permute(0, 3, 1, 4, 2, 5).reshape(b, ws, pw, heads * d)
        return fast_linear(o, self.proj.weight, self.proj.bias, residual=xp)


class TinyViTBlock(nn.Module):
    """Windowed attention (+x), 3x3 depthwise Conv_BN, MLP (+x) on tokens (B, H*W, C).

    Windows of ``window_size``^2 tokens; H, W are zero-padded up to a multiple of the window
    *before* the attention's LayerNorm (so padded tokens are keys/values too, as in the
    official code) and cropped after it.
    """

    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int,
                 window_size: int = 7, mlp_ratio: float = 4.0, local_conv_size: int = 3,
                 activation: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        if window_size <= 0 or dim % num_heads:
            raise ValueError("window_size must be > 0 and dim divisible by num_heads")
        self.dim = dim
        self.input_resolution = input_resolution
        self.num_heads = num_heads
        self.window_size = window_size
        self.mlp_ratio = mlp_ratio
        head_dim = dim // num_heads
        self.attn = Attention(dim, head_dim, num_heads, attn_ratio=1,
                              resolution=(window_size, window_size))
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio),
                       act_layer=activation)
        pad = local_conv_size // 2
        self.local_conv = Conv2d_BN(dim, dim, ks=local_conv_size, stride=1, pad=pad,
                                    groups=dim)

    def forward(self, x: Tensor, fast: bool = False) -> Tensor:
        """Reference: tokens (B, H*W, C).  fast: tokens (B, H, W, C), see ``forward_fast``."""
        if fast:
            return self.forward_fast(x)
        h, w = self.input_resolution
        b, n, c = x.shape
        if n != h * w:
            raise ValueError(f"expected {h}*{w} tokens, got {n}")
        ws = self.window_size
        res_x = x
        if h == ws and w == ws:
            x = self.attn(x)
        else:
            x = x.view(b, h, w, c)
            pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
            if pad_b or pad_r:
                x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
            ph, pw = h + pad_b, w + pad_r
            nh, nw = ph // ws, pw // ws
            x = x.view(b, nh, ws, nw, ws, c).transpose(2, 3).reshape(b * nh * nw, ws * ws, c)
            x = self.attn(x)
            x = x.view(b, nh, nw, ws, ws, c).transpose(2, 3).reshape(b, ph, pw, c)
            if pad_b or pad_r:
                x = x[:, :h, :w].contiguous()
            x = x.view(b, n, c)
        x = res_x + x
        x = x.transpose(1, 2).reshape(b, c, h, w)
        x = self.local_conv(x)
        x = x.view(b, c, n).transpose(1, 2)
        return x + self.mlp(x)

    def forward_fast(self, x: Tensor) -> Tensor:
        """Tokens (B, H, W, C) contiguous -> same shape."""
        x = self._attention_fast(x)
        w, bias = self.local_conv.fused()
        layer = self.local_conv.c
        # (B, H, W, C) is the memory of a channels-last (B, C, H, W): no transposes
        x = fast_conv(x.permute(0, 3, 1, 2), w, bias, layer.stride, layer.padding, layer.groups)
        x = x.permute(0, 2, 3, 1).contiguous()  # already contiguous (channels-last output)
        return self.mlp.forward_fast_residual_(x)

    def _attention_fast(self, x: Tensor) -> Tensor:
        """x + attn(x) for tokens (B, H, W, C) -> new (B, H, W, C), windows as official.

        Processed one band of windows (window_size rows) at a time: LayerNorm, qkv, the
        attention of the band's windows, proj and the residual all stay in cache, and the
        only full-size allocation is the output.
        """
        b, h, w, c = x.shape
        ws = self.window_size
        pad_r = (ws - w % ws) % ws  # bottom padding: the last band has rows < ws
        out = torch.empty_like(x)
        for r0 in range(0, h, ws):
            rows = min(ws, h - r0)
            band = x[:, r0:r0 + rows]  # (B, rows, W, C), contiguous for B = 1
            if rows < ws or pad_r:
                # zeros *before* the LayerNorm: padded tokens are keys/values (official)
                band = F.pad(band, (0, 0, 0, pad_r, 0, ws - rows))
            y = self.attn.forward_band(band, ws)  # band + attn(band)
            out[:, r0:r0 + rows] = y[:, :rows, :w]
        return out


class BasicLayer(nn.Module):
    """Stages 1-3: ``depth`` TinyViT blocks, then an optional PatchMerging."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], depth: int,
                 num_heads: int, window_size: int, mlp_ratio: float = 4.0,
                 downsample: type[PatchMerging] | None = None, local_conv_size: int = 3,
                 activation: type[nn.Module] = nn.GELU, out_dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim
        self.input_resolution = input_resolution
        self.depth = depth
        self.blocks = nn.ModuleList(
            TinyViTBlock(dim=dim, input_resolution=input_resolution, num_heads=num_heads,
                         window_size=window_size, mlp_ratio=mlp_ratio,
                         local_conv_size=local_conv_size, activation=activation)
            for _ in range(depth))
        self.downsample = (downsample(input_resolution, dim=dim, out_dim=out_dim,
                                      activation=activation) if downsample else None)

    def forward(self, x: Tensor, fast: bool = False) -> Tensor:
        """Reference: tokens (B, H*W, C).  fast: tokens (B, H, W, C), see ``forward_fast``."""
        for blk in self.blocks:
            x = blk(x, fast=fast)
        if self.downsample is not None:
            x = self.downsample(x.permute(0, 3, 1, 2) if fast else x, fast=fast)
        return x

    def forward_fast(self, x: Tensor) -> Tensor:
        """Tokens (B, H, W, C) -> tokens (B, H', W', C')."""
        return self(x, fast=True)


# ---------------------------------------------------------------- the encoder

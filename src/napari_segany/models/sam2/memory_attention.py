"""SAM 2's memory attention ("memory attention" in SAM 2 fig. 2).

The current frame's stride-16 tokens (B, h*w, 256) attend to themselves, then to the
memory bank: the spatial memories of earlier frames (B, n*h*w, 64) followed by object-
pointer tokens (B, P, 64).  Both attentions use axial rotary position encoding (RoPE) on
the h x w grid; memory frames reuse the current frame's rotations (``rope_k_repeat``) and
object pointers get none.  Batch-first tensors throughout.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .position_encoding import axial_rope, rotate


class RoPEAttention(nn.Module):
    """Multi-head attention with axial RoPE on the queries and the first keys.

    kv_in_dim: width of keys/values (64 for memories); queries are ``embedding_dim``.
    Sequences of queries must be square grids (h = w), as in the official code.
    """

    def __init__(self, embedding_dim: int = 256, num_heads: int = 1, downsample_rate: int = 1,
                 kv_in_dim: int | None = None, rope_theta: float = 10000.0,
                 rope_k_repeat: bool = False) -> None:
        super().__init__()
        kv_in_dim = embedding_dim if kv_in_dim is None else kv_in_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(kv_in_dim, self.internal_dim)
        self.v_proj = nn.Linear(kv_in_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)
        self.rope_theta = rope_theta
        self.rope_k_repeat = rope_k_repeat
        self._rope: dict[tuple, Tensor] = {}

    def _rotations(self, n: int, device) -> Tensor:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"RoPE attention needs a square grid of queries; got {n} tokens")
        key = (n, device)
        if key not in self._rope:
            head_dim = self.internal_dim // self.num_heads
            self._rope[key] = axial_rope(head_dim, side, side, self.rope_theta).to(device)
        return self._rope[key]

    def _heads(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, num_k_exclude_rope: int = 0) -> Tensor:
        """q (B, Nq, C), k and v (B, Nk, kv_in_dim) -> (B, Nq, C).  The last
        ``num_k_exclude_rope`` keys (object pointers) are not rotated."""
        q, k, v = self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v))
        rope = self._rotations(q.shape[-2], q.device)
        num_rope = k.shape[-2] - num_k_exclude_rope
        if num_rope != q.shape[-2] and not self.rope_k_repeat:
            raise ValueError("keys and queries differ in length: build with rope_k_repeat=True")
        q = rotate(q, rope)
        if num_rope == k.shape[-2]:
            k = rotate(k, rope)
        elif num_rope > 0 and torch.is_grad_enabled():
            k = torch.cat([rotate(k[:, :, :num_rope], rope), k[:, :, num_rope:]], dim=2)
        elif num_rope > 0:  # inference: the spatial keys rotated in place, no 28k-token copy
            k = k.contiguous()
            k[:, :, :num_rope] = rotate(k[:, :, :num_rope], rope)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).flatten(2))


class MemoryAttentionLayer(nn.Module):
    """Pre-norm: self-attention, cross-attention to the memory (position encoding on the
    keys only), then a ReLU MLP; each with a residual."""

    def __init__(self, d_model: int = 256, dim_feedforward: int = 2048, kv_in_dim: int = 64,
                 rope_theta: float = 10000.0) -> None:
        super().__init__()
        self.self_attn = RoPEAttention(d_model, rope_theta=rope_theta)
        self.cross_attn_image = RoPEAttention(d_model, kv_in_dim=kv_in_dim, rope_theta=rope_theta,
                                              rope_k_repeat=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(self, tgt: Tensor, memory: Tensor, keys: Tensor, num_k_exclude_rope: int) -> Tensor:
        """keys: ``memory + pos`` (the same for every layer: the caller adds them once)."""
        x = self.norm1(tgt)
        tgt = tgt + self.self_attn(x, x, x)
        x = self.norm2(tgt)
        tgt = tgt + self.cross_attn_image(x, keys, memory, num_k_exclude_rope)
        x = self.norm3(tgt)
        return tgt + self.linear2(F.relu(self.linear1(x)))


class MemoryAttention(nn.Module):
    """``num_layers`` :class:`MemoryAttentionLayer` and a final LayerNorm."""

    def __init__(self, d_model: int = 256, num_layers: int = 4, dim_feedforward: int = 2048,
                 kv_in_dim: int = 64) -> None:
        super().__init__()
        self.d_model = d_model
        self.layers = nn.ModuleList(
            MemoryAttentionLayer(d_model, dim_feedforward, kv_in_dim) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, curr: Tensor, curr_pos: Tensor, memory: Tensor, memory_pos: Tensor,
                num_obj_ptr_tokens: int = 0) -> Tensor:
        """curr, curr_pos (B, h*w, C) row-major tokens of the current frame; memory,
        memory_pos (B, M, kv_in_dim), the last ``num_obj_ptr_tokens`` being object pointers.
        Returns the memory-conditioned tokens (B, h*w, C)."""
        x = curr + 0.1 * curr_pos
        keys = memory + memory_pos  # once per frame, not per layer (28k tokens)
        for layer in self.layers:
            x = layer(x, memory, keys, num_obj_ptr_tokens)
        return self.norm(x)

"""EfficientSAM's two-way transformer (same dataflow as SAM's, own key names).

Differences from Meta SAM's module that matter for the key layout: the token MLP is an
:class:`~.common.MLPBlock` (``mlp.layers.0.0`` + ``mlp.fc``, not ``lin1``/``lin2``).
Shapes: image (1 or B, C, h, w), image PE (1 or B, C, h, w), tokens (B, T, C).

Speed: when B prompt sets share one image embedding, the image side stays at batch 1
until the first image-to-token update makes it prompt-specific, so the first layer's
token-to-image k/v and image-to-token q projections (3 of the 10 large 4096-row
projections) run once instead of B times, and the embedding is never tiled.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .common import MLPBlock


class AttentionForTwoWayAttentionBlock(nn.Module):
    """Multi-head attention with q/k/v projected down to ``dim // downsample_rate``."""

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.internal_dim = embedding_dim // downsample_rate
        if self.internal_dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide {self.internal_dim}")
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """q (B|1, Nq, C), k/v (B|1, Nk, C) -> (B, Nq, C)."""
        q = self._heads(self.q_proj(q))
        k = self._heads(self.k_proj(k))
        v = self._heads(self.v_proj(v))
        b = max(q.shape[0], k.shape[0])  # a batch-1 side is shared by all prompt sets
        q, k, v = q.expand(b, -1, -1, -1), k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)
        # default scale 1/sqrt(C/heads) == the official inv_sqrt_c_per_head
        out = F.scaled_dot_product_attention(q, k, v)
        b, h, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * c))


class TwoWayAttentionBlock(nn.Module):
    """Token self-attn -> token-to-image attn -> token MLP -> image-to-token attn."""

    def __init__(
        self, embedding_dim: int, num_heads: int, mlp_dim: int = 2048,
        activation: type[nn.Module] = nn.GELU, attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = AttentionForTwoWayAttentionBlock(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = AttentionForTwoWayAttentionBlock(
            embedding_dim, num_heads, attention_downsample_rate
        )
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLPBlock(embedding_dim, mlp_dim, embedding_dim, 1, activation)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = AttentionForTwoWayAttentionBlock(
            embedding_dim, num_heads, attention_downsample_rate
        )
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor
    ) -> tuple[Tensor, Tensor]:
        # The first layer *adds* the PE to the queries instead of only using it for q/k,
        # exactly as the official code (the query PE is the initial token embedding itself).
        if not self.skip_first_layer_pe:
            queries = queries + query_pe
        queries = self.norm1(queries + self.self_attn(queries, queries, queries))

        q = queries + query_pe
        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))

        queries = self.norm3(queries + self.mlp(queries))

        q = queries + query_pe
        k = keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """``forward(image (1|B, C, h, w), image_pe (1|B, C, h, w), tokens (B, T, C))``
    -> (tokens (B, T, C), image tokens (B, h*w, C))."""

    def __init__(
        self, depth: int = 2, embedding_dim: int = 256, num_heads: int = 8, mlp_dim: int = 2048,
        activation: type[nn.Module] = nn.GELU, attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim, num_heads, mlp_dim, activation, attention_downsample_rate,
                skip_first_layer_pe=(i == 0),
            )
            for i in range(depth)
        )
        self.final_attn_token_to_image = AttentionForTwoWayAttentionBlock(
            embedding_dim, num_heads, attention_downsample_rate
        )
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(self, image_embedding: Tensor, image_pe: Tensor, point_embedding: Tensor):
        # token-major and contiguous once, so the projections below need no copies
        keys = image_embedding.flatten(2).transpose(1, 2).contiguous()  # (1|B, h*w, C)
        key_pe = image_pe.flatten(2).transpose(1, 2).contiguous()  # (1|B, h*w, C)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        q = queries + point_embedding
        k = keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys

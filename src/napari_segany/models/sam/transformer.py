"""SAM's two-way transformer: prompt tokens and image tokens attend to each other.

Shapes: tokens (B, N, C); image tokens (Bi, h*w, C) with Bi = 1 or B.  While the image
tokens are still identical for every prompt set (Bi = 1, before the first image-to-token
update) they are kept un-replicated, so batched prompts share those projections.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import MLPBlock


def _bmm(a: Tensor, b: Tensor) -> Tensor:
    """(B, M, K) @ (1 or B, K, N) -> (B, M, N); a shared right factor becomes one GEMM."""
    if b.shape[0] == 1 and a.shape[0] > 1:
        return (a.reshape(-1, a.shape[-1]) @ b[0]).view(a.shape[0], a.shape[1], -1)
    return a @ b


class Attention(nn.Module):
    """Multi-head attention whose q/k/v live in ``embedding_dim // downsample_rate`` channels.

    Besides the plain ``forward``, the decoder's cross-attentions between a few prompt
    tokens (N ~ 7) and many image tokens (L = 4096) have exact rewrites that never project
    the image tokens: the per-head projection of the *image* side is folded into the few
    tokens (W^T q instead of W x for every x).  That costs ~heads*N instead of
    ``internal_dim`` channels per image token, so it is used only when cheaper.
    """

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads:
            raise ValueError(f"num_heads {num_heads} must divide {self.internal_dim}")
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.v_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)

    def _heads(self, x: Tensor, batch: int) -> Tensor:
        """(b, n, c) -> (batch, heads, n, c / heads); b = 1 is broadcast (a view, no copy)."""
        x = x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)
        return x.expand(batch, -1, -1, -1)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """q (Bq, Nq, C), k and v (Bk, Nk, C), batches 1 or B -> (B, Nq, C)."""
        batch = max(q.shape[0], k.shape[0], v.shape[0])
        q = self._heads(self.q_proj(q), batch)
        k = self._heads(self.k_proj(k), batch)
        v = self._heads(self.v_proj(v), batch)
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(c/heads), as official
        return self.out_proj(out.transpose(1, 2).flatten(2))

    def _fold(self, x: Tensor, proj: nn.Linear) -> Tensor:
        """Token features (B, N, heads, d) -> (B, heads*N, C): per head x @ W_h, so that
        x . (W_h y) = (x @ W_h) . y for image tokens y."""
        w = proj.weight.view(self.num_heads, -1, self.embedding_dim)  # (heads, d, C)
        return torch.einsum("bnhd,hdc->bhnc", x, w).flatten(1, 2)

    def tokens_to_image(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Few tokens attend to image tokens: q (B, N, C); k, v (1 or B, L, C) -> (B, N, C)."""
        b, n, _ = q.shape
        if b * self.num_heads * n >= k.shape[0] * self.internal_dim:
            return self(q, k, v)
        heads = self.num_heads
        qh = self.q_proj(q).unflatten(-1, (heads, -1))
        qh = qh * qh.shape[-1] ** -0.5
        # q.(W_k y + b_k): the q.b_k term is constant over the keys, softmax drops it
        scores = _bmm(self._fold(qh, self.k_proj), k.transpose(1, 2))  # (B, heads*N, L)
        probs = scores.view(b, heads, n, -1).softmax(dim=-1)
        # sum_j p_j (W_v y_j + b_v) = W_v (sum_j p_j y_j) + b_v, as sum_j p_j = 1
        ctx = _bmm(probs.flatten(1, 2), v).view(b, heads, n, -1)  # (B, heads, N, C)
        w_v = self.v_proj.weight.view(heads, -1, self.embedding_dim)
        out = torch.einsum("bhnc,hdc->bnhd", ctx, w_v) + self.v_proj.bias.view(heads, -1)
        return self.out_proj(out.flatten(2))

    def image_to_tokens(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Image tokens attend to few tokens: q (1 or B, L, C); k, v (B, N, C) -> (B, L, C)."""
        b, n, _ = k.shape
        heads = self.num_heads
        if 2 * b * heads * n >= (q.shape[0] + b) * self.internal_dim:
            return self(q, k, v)
        kh = self.k_proj(k).unflatten(-1, (heads, -1))
        kh = kh * kh.shape[-1] ** -0.5
        # (W_q x + b_q).k = x.(W_q^T k) + b_q.k; the second term varies over the keys: kept
        bias = torch.einsum("bnhd,hd->bhn", kh, self.q_proj.bias.view(heads, -1))
        scores = _bmm(self._fold(kh, self.q_proj), q.transpose(1, 2))  # (B, heads*N, L)
        scores = scores + bias.reshape(b, -1, 1)
        probs = scores.view(b, heads, n, -1).softmax(dim=2).flatten(1, 2)
        # out_proj(sum_j p_j v_j) = sum_j p_j (W_o,h v_j) + b_o: fold W_o into the values
        vh = self.v_proj(v).unflatten(-1, (heads, -1))  # (B, N, heads, d)
        w_o = self.out_proj.weight.view(self.embedding_dim, heads, -1)
        values = torch.einsum("bnhd,chd->bhnc", vh, w_o).flatten(1, 2)  # (B, heads*N, C)
        return torch.baddbmm(self.out_proj.bias, probs.transpose(1, 2), values)


class TwoWayAttentionBlock(nn.Module):
    """Self-attn of tokens, tokens->image cross-attn, token MLP, image->tokens cross-attn."""

    def __init__(
        self, embedding_dim: int, num_heads: int, mlp_dim: int = 2048,
        attention_downsample_rate: int = 2, skip_first_layer_pe: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = Attention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate
        )
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = MLPBlock(embedding_dim, mlp_dim, nn.ReLU)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate
        )
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor
    ) -> tuple[Tensor, Tensor]:
        if self.skip_first_layer_pe:  # first layer: no PE and no residual (official)
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)

        k = keys + key_pe
        attn_out = self.cross_attn_token_to_image.tokens_to_image(queries + query_pe, k, keys)
        queries = self.norm2(queries + attn_out)
        queries = self.norm3(queries + self.mlp(queries))

        attn_out = self.cross_attn_image_to_token.image_to_tokens(k, queries + query_pe, queries)
        keys = self.norm4(keys + attn_out)
        return queries, keys


class TwoWayTransformer(nn.Module):
    """``depth`` two-way blocks, then a final token->image attention and LayerNorm."""

    def __init__(
        self, depth: int, embedding_dim: int, num_heads: int, mlp_dim: int,
        attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.depth = depth
        self.embedding_dim = embedding_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim, num_heads, mlp_dim,
                attention_downsample_rate=attention_downsample_rate,
                skip_first_layer_pe=(i == 0),
            )
            for i in range(depth)
        )
        self.final_attn_token_to_image = Attention(
            embedding_dim, num_heads, downsample_rate=attention_downsample_rate
        )
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(
        self, image_embedding: Tensor, image_pe: Tensor, point_embedding: Tensor
    ) -> tuple[Tensor, Tensor]:
        """image_embedding (Bi, C, h, w), Bi = 1 or B; image_pe (1, C, h, w);
        point_embedding (B, N, C).  Returns tokens (B, N, C) and image tokens (B, h*w, C)
        (row-major over h, w)."""
        keys = image_embedding.flatten(2).transpose(1, 2).contiguous()
        key_pe = image_pe.flatten(2).transpose(1, 2).contiguous()
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        final = self.final_attn_token_to_image
        attn_out = final.tokens_to_image(queries + point_embedding, keys + key_pe, keys)
        queries = self.norm_final_attn(queries + attn_out)
        return queries, keys

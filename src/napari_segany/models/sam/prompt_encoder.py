"""SAM's prompt encoder: points/boxes -> sparse tokens, a low-res mask -> dense embedding.

Coordinates are (x, y) pixels of the *model input* frame (``input_image_size``, the padded
square fed to the image encoder), before the +0.5 pixel-centre shift applied here.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .common import LayerNorm2d


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of normalised (x, y) positions (Tancik et al.).

    ``positional_encoding_gaussian_matrix`` (2, F) is a persistent buffer: it is part of
    the official checkpoints and must be loaded, not re-drawn.
    """

    def __init__(self, num_pos_feats: int = 64, scale: float | None = None) -> None:
        super().__init__()
        scale = 1.0 if scale is None or scale <= 0.0 else scale
        self.register_buffer(
            "positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats))
        )

    def _pe_encoding(self, coords: Tensor) -> Tensor:
        """(..., 2) positions in [0, 1] (x, y) -> (..., 2F) [sin, cos] features.

        Computed in float32 whatever the module dtype (phases of up to ~2*pi*|G|*2 lose
        too much in half precision), returned in the buffer's dtype."""
        g = self.positional_encoding_gaussian_matrix
        coords = 2 * coords.float() - 1
        coords = coords @ g.float()
        coords = coords * (2 * math.pi)  # same float32 scalar product as the official 2*pi*x
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1).to(g.dtype)

    def forward(self, size: tuple[int, int]) -> Tensor:
        """Encoding of the centres of an h x w grid -> (2F, h, w)."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        y = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        x = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        grid = torch.stack(torch.broadcast_tensors(x[None, :], y[:, None]), dim=-1)  # (h, w, 2)
        return self._pe_encoding(grid).permute(2, 0, 1)

    def forward_with_coords(self, coords: Tensor, image_size: tuple[int, int]) -> Tensor:
        """(B, N, 2) (x, y) pixels of an (H, W) frame -> (B, N, 2F)."""
        h, w = image_size
        scale = torch.tensor([w, h], dtype=torch.float32, device=coords.device)
        return self._pe_encoding(coords.float() / scale)


class PromptEncoder(nn.Module):
    """Embeds prompts for the mask decoder.

    embed_dim: token width (256); image_embedding_size: (h, w) of the image embedding;
    input_image_size: (H, W) of the model input (16 h, 16 w); mask_in_chans: hidden
    channels of the mask branch (16).  Mask prompts are (B, 1, 4h, 4w) logits.
    """

    def __init__(
        self, embed_dim: int, image_embedding_size: tuple[int, int],
        input_image_size: tuple[int, int], mask_in_chans: int = 16,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = tuple(input_image_size)
        self.image_embedding_size = tuple(image_embedding_size)
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        # 0: background point, 1: foreground point, 2: box top-left, 3: box bottom-right
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)
        self._dense_pe_cache: tuple[tuple, Tensor] | None = None

    def get_dense_pe(self) -> Tensor:
        """Positional encoding of the embedding grid, (1, embed_dim, h, w).

        Returned with channels-last strides (a view of a cached (1, h*w, C) token tensor,
        the layout the decoder consumes, so no transpose per click).  The cache depends
        only on the Gaussian matrix and is keyed on its storage, in-place version counter,
        device and dtype, so loading weights or ``.to()`` refreshes it.
        """
        g = self.pe_layer.positional_encoding_gaussian_matrix
        key = (g.data_ptr(), g._version, g.device, g.dtype, self.image_embedding_size)
        if self._dense_pe_cache is None or self._dense_pe_cache[0] != key:
            h, w = self.image_embedding_size
            # a normal tensor even when first asked under inference_mode: it is reused later
            with torch.inference_mode(False), torch.no_grad():
                tokens = self.pe_layer((h, w)).flatten(1).t().contiguous().unsqueeze(0)
            self._dense_pe_cache = (key, tokens.transpose(1, 2).unflatten(2, (h, w)))
        return self._dense_pe_cache[1]

    def _embed_points(self, points: Tensor, labels: Tensor, pad: bool) -> Tensor:
        """points (B, N, 2) x/y, labels (B, N) -> (B, N (+1 if pad), C).

        Labels: -1 padding, 0 background, 1 foreground; 2 and 3 are box corners given as
        points (top-left, bottom-right), as SAM 2 feeds boxes."""
        points = points + 0.5  # pixel centre
        if pad:  # SAM appends a (0, 0) point labelled -1 when there is no box
            points = torch.cat([points, points.new_zeros(points.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((labels.shape[0], 1), -1)], dim=1)
        pe = self.pe_layer.forward_with_coords(points, self.input_image_size)
        table = torch.cat([
            self.not_a_point_embed.weight,
            self.point_embeddings[0].weight,
            self.point_embeddings[1].weight,
            self.point_embeddings[2].weight,
            self.point_embeddings[3].weight,
        ])
        # label -1 replaces the positional encoding, 0..3 add to it (as the official code)
        pe = torch.where((labels == -1).unsqueeze(-1), torch.zeros((), dtype=pe.dtype), pe)
        return pe + table[labels.long() + 1]

    def _embed_boxes(self, boxes: Tensor) -> Tensor:
        """boxes (B, 4) x0, y0, x1, y1 -> (B, 2, C) corner tokens."""
        corners = (boxes + 0.5).reshape(-1, 2, 2)
        pe = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        kinds = torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight])
        return pe + kinds

    def forward(
        self, points: tuple[Tensor, Tensor] | None, boxes: Tensor | None,
        masks: Tensor | None, batch_size: int = 1,
    ) -> tuple[Tensor, Tensor]:
        """Returns sparse (B, N, C) tokens (points first, then box corners) and dense
        embeddings (B, C, h, w) for ``masks``, or (1, C, h, w) ``no_mask_embed`` without a
        mask (broadcast by the decoder instead of copied B times).

        ``batch_size`` is used only when there are neither points nor boxes.
        """
        sparse = []
        if points is not None:
            coords, labels = points
            sparse.append(self._embed_points(coords, labels, pad=boxes is None))
            batch_size = coords.shape[0]
        if boxes is not None:
            sparse.append(self._embed_boxes(boxes))
            batch_size = boxes.shape[0]
        weight = self.no_mask_embed.weight
        if not sparse:
            sparse.append(weight.new_empty(batch_size, 0, self.embed_dim))
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            h, w = self.image_embedding_size
            dense = weight.reshape(1, -1, 1, 1).expand(1, -1, h, w)
        return torch.cat(sparse, dim=1) if len(sparse) > 1 else sparse[0], dense

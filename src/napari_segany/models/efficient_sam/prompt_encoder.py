"""EfficientSAM prompt encoder: points (and box corners) -> sparse embeddings.

Unlike Meta SAM there are no dense (mask) prompts and no ``not_a_point`` zeroing:
every point gets the random-Fourier position encoding of its (x + 0.5, y + 0.5)
location, plus a learned vector chosen by its label:

====== ================================ =====================================
label  meaning                          added embedding
====== ================================ =====================================
-1     padding                          ``invalid_points``  (PE is *kept*)
0      negative (background) click      nothing (PE only)
1      positive (foreground) click      ``point_embeddings``
2      box top-left corner (x0, y0)     ``bbox_top_left_embeddings``
3      box bottom-right corner (x1, y1) ``bbox_bottom_right_embeddings``
====== ================================ =====================================
"""
from __future__ import annotations


import torch
from torch import Tensor, nn

from ..sam.prompt_encoder import PositionEmbeddingRandom  # the same random-Fourier features

#: label value -> name of the embedding that is added to the point's PE
LABEL_EMBEDDINGS = {
    -1: "invalid_points",
    1: "point_embeddings",
    2: "bbox_top_left_embeddings",
    3: "bbox_bottom_right_embeddings",
}
VALID_LABELS = (-1, 0, 1, 2, 3)


class PromptEncoder(nn.Module):
    """Sparse prompt embeddings.  ``forward(coords (B, N, 2), labels (B, N)) -> (B, N, C)``.

    ``coords`` are x/y in model-input pixels (the 1024 x 1024 frame) *before* the +0.5
    pixel-centre shift, which is applied here.
    """

    def __init__(
        self, embed_dim: int = 256, image_embedding_size: tuple[int, int] = (64, 64),
        input_image_size: tuple[int, int] = (1024, 1024),
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = tuple(image_embedding_size)
        self.input_image_size = tuple(input_image_size)
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.invalid_points = nn.Embedding(1, embed_dim)
        self.point_embeddings = nn.Embedding(1, embed_dim)
        self.bbox_top_left_embeddings = nn.Embedding(1, embed_dim)
        self.bbox_bottom_right_embeddings = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> Tensor:
        """PE of the image-embedding grid: (1, C, 64, 64)."""
        return self.pe_layer(self.image_embedding_size).unsqueeze(0)

    def forward(self, coords: Tensor, labels: Tensor) -> Tensor:
        pe = self.pe_layer.forward_with_coords(coords + 0.5, self.input_image_size)
        # Select one learned vector per point (zero for negatives), then add it once:
        # pe + 0 is exact, so this equals the official masked in-place additions.
        extra = torch.zeros_like(pe)
        for label, name in LABEL_EMBEDDINGS.items():
            weight = getattr(self, name).weight  # (1, C)
            extra = torch.where((labels == label)[..., None], weight, extra)
        return pe + extra

"""What an image encoder produced for one image (or tile): the typed cache entry.

An :class:`Embedding` holds the encoder's features as one or several **levels**: SAM,
MobileSAM and EfficientSAM give one (1, 256, 64, 64) tensor; SAM 2 gives three (the
(1, 256, 64, 64) embedding plus (1, 32, 256, 256) and (1, 64, 128, 128) high-resolution
levels).  Beside the features it keeps what decoding needs: the original image size, the
size of the image inside the prompt frame (``input_size``, None: the model's transform
computes it from the original size), and which model (registry name and family) made it.

Caches and the on-disk store hold Embeddings; FastSAM's per-image result is its own entry
(:class:`~..detection.fastsam.FastSAMResult`), never an Embedding.
"""
from __future__ import annotations

from typing import Sequence

import torch


class Embedding:
    """The features of one image for one model, and the sizes needed to decode against them.

    ``features``: a (1, C, h, w) tensor, or a sequence of them (the levels, main one first).
    ``original_size``: (H, W) of the image given to the encoder's preprocessing.
    ``input_size``: (h, w) of that image inside the prompt frame, or None (derived).
    ``model`` / ``family``: registry name and family of the model ("" when unknown).
    """

    __slots__ = ("levels", "original_size", "input_size", "model", "family")

    def __init__(self, features: torch.Tensor | Sequence[torch.Tensor], original_size,
                 input_size=None, model: str = "", family: str = ""):
        levels = tuple(features) if isinstance(features, (tuple, list)) else (features,)
        if not levels or not all(torch.is_tensor(level) for level in levels):
            raise TypeError("An Embedding holds one tensor or a sequence of tensors (its levels).")
        self.levels = levels
        self.original_size = (int(original_size[0]), int(original_size[1]))
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))
        self.model, self.family = str(model), str(family)

    @property
    def features(self) -> torch.Tensor:
        """The main level: the (1, C, h, w) image embedding the prompts are decoded against."""
        return self.levels[0]

    @property
    def nbytes(self) -> int:
        """Memory held by the features (for cache budgets)."""
        return int(sum(level.nbytes for level in self.levels))

    def to(self, device) -> "Embedding":
        """The same embedding with its levels on ``device`` (itself when already there)."""
        device = torch.device(device)
        if all(level.device == device for level in self.levels):
            return self
        return self.replace(tuple(level.to(device) for level in self.levels))

    def detach(self) -> "Embedding":
        return self.replace(tuple(level.detach() for level in self.levels))

    def replace(self, levels) -> "Embedding":
        return Embedding(levels, self.original_size, self.input_size, self.model, self.family)

    def __repr__(self) -> str:
        shapes = ", ".join(str(tuple(level.shape)) for level in self.levels)
        return (f"Embedding([{shapes}], original_size={self.original_size}, "
                f"model={self.model or '?'})")

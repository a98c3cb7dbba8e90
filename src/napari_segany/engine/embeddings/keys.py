"""What an embedding depends on: :class:`EmbeddingKey` and the digests it is made of.

* the 2D image slice: a digest of its bytes + shape + dtype (:func:`slice_digest`), so an
  edited slice gets a new key by itself, whatever the layer or the slice index was;
* the model: registry name + checkpoint content digest (:func:`model_identity`);
* the normalisation: the contrast limits used to map the slice to uint8 (None = automatic);
* the tiling: None for the whole slice, else ``(tile, halo, ny, nx, row, col)`` of one tile
  (:meth:`napari_segany.engine.tiling.TileGrid.key`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EmbeddingKey:
    """What an embedding depends on. Hashable and cheap to compare (strings and tuples)."""

    slice_digest: str
    model: str
    normalisation: tuple[float, float] | None = None
    tiling: tuple | None = None

    def as_str(self) -> str:
        """A file-name-safe identity, for on-disk stores."""
        norm = "auto" if self.normalisation is None else "%g_%g" % self.normalisation
        tiling = "whole" if self.tiling is None else "_".join(map(str, self.tiling))
        model = hashlib.blake2b(self.model.encode(), digest_size=8).hexdigest()
        return f"{self.slice_digest}-{model}-{norm}-{tiling}"


def slice_digest(image: np.ndarray) -> str:
    """A 128-bit digest of a 2D slice's pixels, shape and dtype (about 1 ms per 2 MB)."""
    image = np.ascontiguousarray(image)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.shape}|{image.dtype.str}|".encode())
    digest.update(memoryview(image).cast("B"))
    return digest.hexdigest()


def model_identity(model) -> str:
    """Registry name + the weights' content: ``"name|sha256:<hex>"`` (see
    :mod:`..weights.content_identity`: a file's sha256, remembered per path/size/mtime, or a digest
    of tensors given in memory), so a moved checkpoint keeps its keys and a replaced one
    never reuses them.  The on-disk store relies on this being content, not a path.
    A bfloat16 encoder (``model.precision == "bf16"``) computes other embeddings from the same
    weights: its identity is ``"name|bf16|sha256:<hex>"`` (float32 keeps the original form,
    so existing stores stay valid)."""
    from ..weights import model_digest

    name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
    precision = getattr(model, "precision", "fp32")
    tag = "" if precision == "fp32" else f"{precision}|"
    return f"{name}|{tag}{model_digest(model)}"


def normalisation_key(contrast_limits) -> tuple[float, float] | None:
    return None if contrast_limits is None else (float(contrast_limits[0]), float(contrast_limits[1]))

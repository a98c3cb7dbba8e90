"""What a promptable predictor is: the interface :class:`~.session.InteractiveSession` and the
widgets use, whichever model and image size is behind it.

Three predictors implement it:

* :class:`~.predictor.Predictor`: one image, SAM-family models (a prompt decoder);
* :class:`~..tiling.TiledPredictor`: a large image, tile by tile;
* :class:`~.fastsam.FastSAMPredictor`: FastSAM, whose prompts *select* among its masks.

:func:`~..tiling.predictor_for` picks the right one for a model and an image.

A decode returns a :class:`Decoded` (one score per candidate mask); :meth:`mask` turns one
candidate into a bounding box and the bool crop inside it, so that no image-sized array is
needed.  ``previous`` / ``candidate`` let a predictor refine an object with what it decoded
before (SAM's ``mask_input``); predictors that cannot, ignore them.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from .masks import BBox


class Decoded(Protocol):
    """The decode of one object's prompts: candidates, each with a score."""

    @property
    def scores(self) -> np.ndarray:
        """(M,) one score per candidate (the model's predicted IoU)."""


@runtime_checkable
class PromptablePredictor(Protocol):
    """Decodes one object's prompts (x, y pixels of the image) into candidate masks."""

    spec: object  # the model's ModelSpec: its name, ``supports_mask_input``...

    @property
    def original_size(self) -> tuple[int, int]:
        """(H, W) of the image the prompts are on."""

    def decode(self, point_coords=None, point_labels=None, box=None,
               multimask_output: bool = True, previous: Decoded | None = None,
               candidate: int = 0) -> Decoded:
        """Candidates for one object; ``previous``/``candidate``: what to refine."""

    def mask(self, decoded: Decoded, candidate: int = 0) -> tuple[BBox | None, np.ndarray]:
        """Candidate ``candidate`` as ((row0, row1, col0, col1) or None, bool crop)."""


@runtime_checkable
class ImagePredictor(PromptablePredictor, Protocol):
    """A promptable predictor of one image whose per-image work (the image embedding, or
    FastSAM's one pass) is computed apart, e.g. in a worker, and cached."""

    model: object

    @property
    def is_image_set(self) -> bool: ...

    def encode(self, rgb: np.ndarray):
        """(H, W, 3) uint8 RGB -> the cache entry of the image (no state is changed)."""

    def set_embedding(self, entry) -> None:
        """Decode against ``entry`` (what :meth:`encode` returned, e.g. from a cache)."""

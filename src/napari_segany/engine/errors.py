"""Exceptions whose messages tell the user what to do."""
from __future__ import annotations


class SegAnyError(Exception):
    """Base class of the errors napari-segany raises on purpose."""


class CheckpointError(SegAnyError, ValueError):
    """A weights file is corrupt, for another model, or refused by the safe reader."""


class WeightsNotFoundError(SegAnyError, FileNotFoundError):
    """The weights are neither in the cache nor downloadable (offline)."""


class PromptError(SegAnyError, ValueError):
    """Prompts that cannot be decoded (empty, out of bounds, wrong shape)."""


class ImageError(SegAnyError, ValueError):
    """An image the models cannot take (wrong dimensions, NaN, empty)."""


class EmbeddingError(SegAnyError, ValueError):
    """An image embedding that does not fit the model decoding it (e.g. missing levels)."""


class Cancelled(SegAnyError):
    """A long run was cancelled by the user; nothing was written."""

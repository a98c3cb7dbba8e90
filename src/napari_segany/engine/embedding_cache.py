"""In-memory LRU cache of image embeddings, with a slot for an on-disk store behind it.

An embedding depends on four things, and the key holds exactly those:

* the 2D image slice: a digest of its bytes + shape + dtype (:func:`slice_digest`), so an
  edited slice gets a new key by itself, whatever the layer or the slice index was;
* the model: registry name + checkpoint content digest (:func:`model_identity`);
* the normalisation: the contrast limits used to map the slice to uint8 (None = automatic);
* the tiling: None for the whole slice, else ``(tile, halo, ny, nx, row, col)`` of one tile
  (:meth:`napari_segany.engine.tiling.TileGrid.key`).

Memory: one SAM embedding is (1, 256, 64, 64) float32 = 4 MiB; the default budget of
:data:`DEFAULT_BUDGET_BYTES` (1 GiB) keeps about 250 slices.  Least recently used entries go
first; an optional ``backing_store`` (anything with ``get(key)`` / ``put(key, entry)``, e.g.
:class:`~napari_segany.engine.embedding_store.EmbeddingStore`, the on-disk zarr store) is
asked on a miss and fed on every ``put``.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

DEFAULT_BUDGET_BYTES = 1 << 30  # 1 GiB


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


@dataclass(frozen=True)
class CachedEmbedding:
    """An embedding and the size of the image it was computed from (needed to decode)."""

    features: torch.Tensor  # (1, C, h, w); FastSAM: its FastSAMResult (see fastsam_interactive)
    original_size: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return int(self.features.nbytes)


class BackingStore(Protocol):
    def get(self, key: EmbeddingKey) -> CachedEmbedding | None: ...

    def put(self, key: EmbeddingKey, entry: CachedEmbedding) -> None: ...


def slice_digest(image: np.ndarray) -> str:
    """A 128-bit digest of a 2D slice's pixels, shape and dtype (about 1 ms per 2 MB)."""
    image = np.ascontiguousarray(image)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.shape}|{image.dtype.str}|".encode())
    digest.update(memoryview(image).cast("B"))
    return digest.hexdigest()


def model_identity(model) -> str:
    """Registry name + the weights' content: ``"name|sha256:<hex>"`` (see
    :mod:`.checkpoint_digest`: a file's sha256, remembered per path/size/mtime, or a digest
    of tensors given in memory), so a moved checkpoint keeps its keys and a replaced one
    never reuses them.  The on-disk store relies on this being content, not a path."""
    from .checkpoint_digest import model_digest

    name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
    return f"{name}|{model_digest(model)}"


def normalisation_key(contrast_limits) -> tuple[float, float] | None:
    return None if contrast_limits is None else (float(contrast_limits[0]), float(contrast_limits[1]))


class EmbeddingCache:
    """Thread-safe LRU of :class:`CachedEmbedding` by :class:`EmbeddingKey` under a byte budget.

    Workers ``put`` from their thread while the GUI ``get``s from the main thread: one lock.
    """

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES,
                 backing_store: BackingStore | None = None):
        self.budget_bytes = int(budget_bytes)
        self.backing_store = backing_store
        self._entries: OrderedDict[EmbeddingKey, CachedEmbedding] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: EmbeddingKey) -> bool:
        return key in self._entries

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: EmbeddingKey) -> CachedEmbedding | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry
        entry = self.backing_store.get(key) if self.backing_store is not None else None
        with self._lock:
            if entry is None:
                self.misses += 1
                return None
            self.hits += 1
        self._insert(key, entry)
        return entry

    def put(self, key: EmbeddingKey, entry: CachedEmbedding) -> None:
        self._insert(key, entry)
        if self.backing_store is not None and torch.is_tensor(entry.features):  # disk: tensors only
            self.backing_store.put(key, entry)

    def _insert(self, key: EmbeddingKey, entry: CachedEmbedding) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            if entry.nbytes > self.budget_bytes:
                return  # larger than the whole budget: keeping it would evict everything
            self._entries[key] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.budget_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes

    def discard(self, predicate) -> int:
        """Drop the in-memory entries whose key satisfies ``predicate``; return how many."""
        with self._lock:
            doomed = [k for k in self._entries if predicate(k)]
            for k in doomed:
                self._bytes -= self._entries.pop(k).nbytes
        return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

"""Image embeddings: computing them, and keeping them in memory and on disk.

* :mod:`.embedding`: :class:`Embedding`, the typed features of one image (one or several
  levels, the sizes needed to decode, the model);
* :mod:`.keys`: what an embedding depends on (:class:`EmbeddingKey`: slice digest, model
  identity, normalisation, tile);
* :mod:`.encoding`: :func:`iter_encode`, the encoder with progress and cancel;
* :mod:`.cache`: :class:`EmbeddingCache`, an LRU under a byte budget with a backing store;
* :mod:`.store`: :class:`EmbeddingStore`, the on-disk zarr store (signature-checked,
  resumable); :mod:`.housekeeping`: its size, pruning by last use.
"""
from __future__ import annotations

from .cache import DEFAULT_BUDGET_BYTES, CacheEntry, EmbeddingCache
from .embedding import Embedding
from .encoding import encode_blocking, iter_encode
from .housekeeping import prune_store, store_entries
from .keys import EmbeddingKey, model_identity, normalisation_key, slice_digest
from .store import EmbeddingStore, StoreWarning, default_store_dir

__all__ = ["DEFAULT_BUDGET_BYTES", "CacheEntry", "Embedding", "EmbeddingCache", "EmbeddingKey",
           "EmbeddingStore", "StoreWarning", "default_store_dir", "encode_blocking",
           "iter_encode", "model_identity", "normalisation_key", "prune_store", "slice_digest",
           "store_entries"]

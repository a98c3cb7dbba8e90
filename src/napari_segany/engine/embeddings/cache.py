"""In-memory LRU cache of image embeddings, with a slot for an on-disk store behind it.

Entries are keyed by what they depend on (:class:`~.keys.EmbeddingKey`).  Memory: one SAM
embedding is (1, 256, 64, 64) float32 = 4 MiB; the default budget of
:data:`DEFAULT_BUDGET_BYTES` (1 GiB) keeps about 250 slices.  Least recently used entries go
first; an optional ``backing_store`` (anything with ``get(key)`` / ``put(key, entry)``, e.g.
:class:`~.store.EmbeddingStore`, the on-disk zarr store) is asked on a miss and fed on every
``put``.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Protocol

from .embedding import Embedding
from .keys import EmbeddingKey

DEFAULT_BUDGET_BYTES = 1 << 30  # 1 GiB


class CacheEntry(Protocol):
    """What the cache holds per key: an :class:`~.embedding.Embedding`, or another per-image
    result that takes its place (FastSAM's :class:`~..detection.fastsam.FastSAMResult`)."""

    original_size: tuple[int, int]

    @property
    def nbytes(self) -> int: ...


class BackingStore(Protocol):
    """An on-disk store behind the cache (:class:`~.store.EmbeddingStore`): Embeddings only."""

    def get(self, key: EmbeddingKey) -> Embedding | None: ...

    def put(self, key: EmbeddingKey, entry: Embedding) -> None: ...


class EmbeddingCache:
    """Thread-safe LRU of cache entries (:class:`~.embedding.Embedding`, FastSAM results) by
    :class:`EmbeddingKey` under a byte budget.

    Workers ``put`` from their thread while the GUI ``get``s from the main thread: one lock.
    """

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES,
                 backing_store: BackingStore | None = None):
        self.budget_bytes = int(budget_bytes)
        self.backing_store = backing_store
        self._entries: OrderedDict[EmbeddingKey, CacheEntry] = OrderedDict()
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

    def get(self, key: EmbeddingKey) -> CacheEntry | None:
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

    def put(self, key: EmbeddingKey, entry: CacheEntry) -> None:
        self._insert(key, entry)
        if self.backing_store is not None and isinstance(entry, Embedding):  # disk: embeddings only
            self.backing_store.put(key, entry)

    def _insert(self, key: EmbeddingKey, entry: CacheEntry) -> None:
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

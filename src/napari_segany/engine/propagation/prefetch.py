"""Embeddings of the slices a propagation will visit, computed ahead in one background thread.

While the decoder works on slice ``k``, the thread fetches (cache) or computes (encoder) the
embeddings of the next ``ahead`` slices of the visiting order, so that a warm run costs only
decoder time and a cold run overlaps decoding with encoding.  The consumer asks for slices
in visiting order; slices it skips (a direction that stopped early) are never computed.

Every embedding goes into the :class:`~..embeddings.EmbeddingCache` under the same key
the interactive widget uses (slice digest, model identity, normalisation), and is also held
by the prefetcher until consumed, so a small cache budget cannot evict it in between.

``close()`` stops the thread (an encoding in progress stops at its next encoder block, see
:mod:`.encoding`) and joins it: no thread outlives the propagation.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np
from torch import nn

from ..embeddings import (
    Embedding, EmbeddingCache, EmbeddingKey, model_identity, slice_digest, iter_encode,
)
from ..errors import Cancelled
from ..progress import run


@dataclass(frozen=True)
class SliceStack:
    """The line of 2D slices a propagation walks along.

    length: number of slices; read(i): the raw pixels of slice i, (H, W[, C]);
    to_rgb(raw): the (H, W, 3) uint8 the model sees; normalisation: what maps raw to uint8
    (part of the embedding key, e.g. the contrast limits; None = automatic percentiles).
    """

    length: int
    read: Callable[[int], np.ndarray]
    to_rgb: Callable[[np.ndarray], np.ndarray]
    normalisation: object = None


class EmbeddingPrefetcher:
    """Fetch or compute the embeddings of ``order`` (slice indices in visiting order)."""

    def __init__(self, stack: SliceStack, predictor, cache: EmbeddingCache,
                 order: list[int], ahead: int = 2):
        if ahead < 0:
            raise ValueError(f"prefetch must be >= 0 slices ahead; got {ahead}.")
        self.stack, self.predictor, self.cache = stack, predictor, cache
        self.order, self.ahead = list(order), int(ahead)
        self.model_id = model_identity(predictor.model)
        self.encoded = 0  # embeddings computed by this run (the rest came from the cache)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._cursor = 0  # position in ``order`` the consumer needs now
        self._ready: dict[int, object] = {}  # position -> its cache entry or the exception
        self._taken: set[int] = set()  # positions being or already computed
        self._thread: threading.Thread | None = None

    # --- consumer side ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="segany-prefetch", daemon=True)
        self._thread.start()

    def get(self, position: int, timeout: float) -> Embedding | None:
        """The embedding at ``position`` of the order, or None if not ready within ``timeout``.

        Moves the cursor there (earlier positions are dropped); re-raises an encoder error.
        """
        with self._cond:
            if position != self._cursor:
                self._cursor = position
                for stale in [p for p in self._ready if p < position]:
                    del self._ready[stale]
                self._cond.notify_all()
            self._cond.wait_for(lambda: position in self._ready or self._stop.is_set(), timeout)
            entry = self._ready.get(position)
        if isinstance(entry, BaseException):
            raise entry
        return entry

    def close(self) -> None:
        """Stop the thread and wait for it (an encoder stops within one block)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # --- thread side -----------------------------------------------------------------------
    def _next_position(self) -> int | None:
        with self._cond:
            while not self._stop.is_set():
                end = min(len(self.order), self._cursor + self.ahead + 1)
                todo = [p for p in range(self._cursor, end) if p not in self._taken]
                if todo:
                    self._taken.add(todo[0])
                    return todo[0]
                self._cond.wait()
        return None

    def _loop(self) -> None:
        while (position := self._next_position()) is not None:
            try:
                entry = self._embed(self.order[position])
            except Cancelled:
                return  # only close() cancels the encoder
            except BaseException as exc:  # handed to the consumer, which re-raises it
                entry = exc
            with self._cond:
                if position >= self._cursor:
                    self._ready[position] = entry
                self._cond.notify_all()

    def _embed(self, index: int) -> Embedding:
        raw = self.stack.read(index)
        key = EmbeddingKey(slice_digest(raw), self.model_id, self.stack.normalisation)
        entry = self.cache.get(key)
        if entry is not None:
            return entry
        rgb = self.stack.to_rgb(raw)
        entry = self._encode(rgb)
        self.cache.put(key, entry)
        self.encoded += 1
        return entry

    def _encode(self, rgb: np.ndarray):
        if self._stop.is_set():
            raise Cancelled("The propagation was closed.")
        if isinstance(getattr(self.predictor, "model", None), nn.Module):
            return run(iter_encode(self.predictor, rgb, self._stop))  # stops between blocks
        return self.predictor.encode(rgb)  # a stand-in predictor: one uninterruptible call

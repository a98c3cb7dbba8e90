"""Getting the embedding of a slice: from the cache, or from a background worker.

``request(source, index)`` answers at once from the cache, or starts (or reuses) a worker and
returns None; when the worker is done, ``on_ready`` is called on the main thread.  One
foreground job at a time; a prefetch job (a neighbouring slice) yields to any request.
Slice digests are remembered per (layer, slice, channels) until the image data changes,
so a click costs no hashing.
"""
from __future__ import annotations

from typing import Callable

from ...engine.embeddings import (
    CacheEntry, EmbeddingCache, EmbeddingKey, model_identity, slice_digest,
)
from ...engine.errors import Cancelled, ImageError
from ..shared.image_slice import ImageSource
from ..shared.workers import EmbeddingJob, start_embedding


class EmbeddingManager:
    def __init__(self, cache: EmbeddingCache, *, on_ready: Callable[[EmbeddingJob], None],
                 on_progress: Callable[[float], None], on_busy: Callable[[bool], None],
                 on_error: Callable[[Exception], None], on_cancelled: Callable[[], None]):
        self.cache = cache
        self.predictor = None
        self._model_id = ""
        self._on_ready, self._on_progress, self._on_busy = on_ready, on_progress, on_busy
        self._on_error, self._on_cancelled = on_error, on_cancelled
        self._digests: dict[tuple, str] = {}
        self.job: EmbeddingJob | None = None  # foreground
        self.prefetch_job: EmbeddingJob | None = None

    # --- state --------------------------------------------------------------------------
    def set_predictor(self, predictor) -> None:
        self.cancel()
        self.cancel_prefetch()
        self.predictor = predictor
        self._model_id = model_identity(predictor.model)

    @property
    def busy(self) -> bool:
        return self.job is not None or self.prefetch_job is not None

    def forget_digests(self) -> None:
        """The image data changed: slices must be hashed again."""
        self._digests.clear()

    def key_for(self, source: ImageSource, index: tuple) -> EmbeddingKey:
        layer = getattr(source.layer, "__wrapped__", source.layer)  # napari's proxy
        memo = (id(layer), index, source.channel_first, source.channels)
        digest = self._digests.get(memo)
        if digest is None:
            digest = self._digests[memo] = slice_digest(source.read(index))
        return EmbeddingKey(digest, self._model_id, source.normalisation())

    # --- requests -----------------------------------------------------------------------
    def request(self, source: ImageSource, index: tuple) -> CacheEntry | None:
        """The embedding of slice ``index`` now, or None after making sure a job computes it."""
        key = self.key_for(source, index)
        entry = self.cache.get(key)
        if entry is not None:
            return entry
        if self.job is not None and self.job.key == key:
            return None
        self.cancel()
        if self.prefetch_job is not None and self.prefetch_job.key == key:
            self.job, self.prefetch_job = self.prefetch_job, None  # promote: show its progress
            self.job.prefetch = False
        else:
            self.cancel_prefetch()
            self.job = self._start(source, index, key, prefetch=False)
        self._on_busy(True)
        return None

    def prefetch(self, source: ImageSource, indices: list[tuple]) -> None:
        """Embed the first of ``indices`` that is not cached, in the background."""
        if self.busy or self.predictor is None:
            return
        for index in indices:
            key = self.key_for(source, index)
            if key not in self.cache and self.cache.get(key) is None:  # get: the disk store too
                try:
                    self.prefetch_job = self._start(source, index, key, prefetch=True)
                except ImageError:
                    continue  # e.g. NaN pixels: said when the user goes there, not ahead
                return

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel.set()  # the worker ends with Cancelled within one encoder block
            self.job = None
            self._on_busy(False)
            self._on_cancelled()

    def cancel_prefetch(self) -> None:
        if self.prefetch_job is not None:
            self.prefetch_job.cancel.set()
            self.prefetch_job = None

    # --- worker callbacks ---------------------------------------------------------------
    def _start(self, source, index, key, prefetch) -> EmbeddingJob:
        rgb = source.to_rgb(source.read(index))
        return start_embedding(self.predictor, rgb, key, index, prefetch=prefetch,
                               on_progress=self._progress, on_done=self._done,
                               on_error=self._failed)

    def _progress(self, report) -> None:
        if self.job is not None:
            self._on_progress(report.fraction)

    def _done(self, job: EmbeddingJob, entry: CacheEntry) -> None:
        if job.cancel.is_set():
            return
        self.cache.put(job.key, entry)  # valid for its key even if nobody waits any more
        if job is self.prefetch_job:
            self.prefetch_job = None
            return
        if job is self.job:
            self.job = None
            self._on_busy(False)
            self._on_ready(job)

    def _failed(self, job: EmbeddingJob, exc: Exception) -> None:
        if job is self.prefetch_job:
            self.prefetch_job = None
        elif job is self.job:
            self.job = None
            self._on_busy(False)
            if not isinstance(exc, Cancelled):
                self._on_error(exc)

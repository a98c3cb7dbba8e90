"""Background work of the widget: loading a model, embedding a slice, decoding prompts.

Both run in napari's thread pool; their results come back as Qt signals on the main thread.
The embedding worker is a generator yielding ``Progress`` reports (see
``engine.embeddings.iter_encode``); cancelling sets an event that stops the encoder within
one block, and the worker then reports :class:`~napari_segany.engine.errors.Cancelled`.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from napari.qt.threading import create_worker

from ...engine.embeddings import CacheEntry, EmbeddingKey, iter_encode
from ...engine import torch_state
from ...engine.errors import SegAnyError


class WorkerFailure(SegAnyError):
    """An unexpected error in a worker, re-typed so that it reaches our error handler.

    (superqt's generator worker swallows a ``RuntimeError`` raised by its generator as
    "the worker was deleted", and torch reports most failures as ``RuntimeError``.)
    """


def _embed(predictor, rgb: np.ndarray, cancel: threading.Event):
    """The slice's cache entry (an Embedding; FastSAM: its result), with progress."""
    try:
        return (yield from iter_encode(predictor, rgb, cancel))
    except RuntimeError as exc:
        raise WorkerFailure(f"The image encoder failed: {exc}") from exc


@dataclass
class EmbeddingJob:
    """A running embedding: what it computes, its worker and its cancel switch."""

    key: EmbeddingKey
    index: tuple
    worker: object
    cancel: threading.Event = field(default_factory=threading.Event)
    prefetch: bool = False


def start_embedding(predictor, rgb: np.ndarray, key: EmbeddingKey, index: tuple, *,
                    on_progress: Callable[[object], None],
                    on_done: Callable[[EmbeddingJob, CacheEntry], None],
                    on_error: Callable[[EmbeddingJob, Exception], None],
                    prefetch: bool = False) -> EmbeddingJob:
    cancel = threading.Event()
    worker = create_worker(_embed, predictor, rgb, cancel, _start_thread=False,
                           _ignore_errors=True)
    job = EmbeddingJob(key, index, worker, cancel, prefetch)
    worker.yielded.connect(on_progress)
    worker.returned.connect(lambda result: on_done(job, result))
    worker.errored.connect(lambda exc: on_error(job, exc))
    worker.start()
    return job


def load_checked(name, checkpoint=None, device=None, where=None, precision="fp32"):
    """``engine.weights.load_model``, after a fast check that a given file is ``name``'s
    weights (:class:`~...engine.weights.RefusedFile` before anything is built)."""
    from ...engine.embeddings import model_identity
    from ...engine.weights import load_model, refuse_wrong_file

    if checkpoint:
        refuse_wrong_file(name, checkpoint, where)
    model = load_model(name, checkpoint=checkpoint, device=device, precision=precision)
    model_identity(model)  # hashes the weights here (remembered), not on the main thread
    return model


def start_model_load(name, checkpoint, device, *, on_done, on_error, where=None,
                     precision="fp32"):
    """:func:`load_checked` in a worker (a 2.5 GB ViT-H takes seconds to read)."""
    worker = create_worker(load_checked, name, checkpoint, device, where, precision,
                           _start_thread=False, _ignore_errors=True)
    worker.returned.connect(on_done)
    worker.errored.connect(on_error)
    worker.start()
    return worker


def _decode(session, prompts, threads):
    try:
        if threads is None:
            return session.decode(prompts)
        with torch_state.threads_of_this_thread(threads):
            return session.decode(prompts)
    except RuntimeError as exc:  # torch's errors: keep them apart from our PromptError
        raise WorkerFailure(f"The mask decoder failed: {exc}") from exc


def start_decode(session, prompts, *, on_done, on_error, threads: int | None = None):
    """``InteractiveSession.decode`` in a worker: one decode of mobile_sam/SAM costs 50-80 ms
    of CPU on two cores (docs/benchmarks.md), too long for the GUI thread.  ``threads``: the
    worker's intra-op threads for this decode (None: torch's count)."""
    worker = create_worker(_decode, session, prompts, threads, _start_thread=False,
                           _ignore_errors=True)
    worker.returned.connect(on_done)
    worker.errored.connect(on_error)
    worker.start()
    return worker


def alive_only(widget, callback: Callable) -> Callable:
    """``callback`` for a worker's signal, dropped once ``widget`` is closed (its ``closed``
    attribute) or deleted by Qt: results come through the event loop, possibly after the user
    closed the dock or the viewer, when the widget's controls no longer exist."""
    from qtpy.compat import isalive

    def call(*args):
        if isalive(widget) and not getattr(widget, "closed", False):
            return callback(*args)
        return None

    return call


def process_events_until(done: Callable[[], bool], timeout: float, what: str,
                         poll: float = 0.002) -> None:
    """Keep the Qt event loop running (workers report through it) until ``done()``.

    For scripts and tests that drive a widget synchronously; raises TimeoutError naming
    ``what`` after ``timeout`` seconds."""
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + timeout
    while not done():
        if time.monotonic() > end:
            raise TimeoutError(f"{what} is still busy after {timeout:.0f} s.")
        QApplication.processEvents()
        time.sleep(poll)
    QApplication.processEvents()

"""The everything run as a napari worker: load what is missing, then segment slice by slice.

The job is a generator (see ``engine.progress``): it yields Progress for the bar and returns
an :class:`Outcome` only when every requested slice is done.  Cancelling (``RunningJob.cancel``)
stops it at the next report (between two decoder batches, or within one encoder block), and
the worker then emits ``aborted`` instead of ``returned``: nothing reaches the layers.

Slices are read from the layer inside the worker, one at a time (a stack is never copied
whole), and image embeddings go through an :class:`EmbeddingCache`, so running again with
other parameters on the same slice only re-runs the decoder.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from napari.qt.threading import create_worker

from ..engine.embedding_cache import (
    CachedEmbedding, EmbeddingCache, EmbeddingKey, model_identity, slice_digest,
)
from ..engine.encoding import iter_encode
from ..engine.everything import iter_segment_everything
from ..engine.everything.presets import DETECTOR_NAME
from ..engine.everything.stack import nested
from ..engine.predictor import Predictor
from ..engine.progress import Progress
from .image_slice import ImageSource
from .workers import WorkerFailure


@dataclass(frozen=True)
class ModelChoice:
    """What to load: registry name, checkpoint file ('' = cache/download), device ('' = auto)."""

    name: str
    checkpoint: str = ""
    device: str = ""


@dataclass
class Request:
    source: ImageSource
    indices: list[tuple]
    method: str
    params: dict
    model_choice: ModelChoice
    model: object | None = None  # already loaded for model_choice, or None
    detector_choice: ModelChoice | None = None  # object_aware only
    detector: object | None = None
    cache: EmbeddingCache = field(default_factory=EmbeddingCache)


@dataclass
class Outcome:
    results: dict  # slice index -> EverythingResult (unfiltered)
    model: object
    detector: object | None


def everything_job(request: Request, cancel: threading.Event):
    """Generator run by the worker; see the module docstring."""
    try:
        if request.model is None:  # kept on the request: a later failure keeps the load
            request.model = yield from _load(request.model_choice, "model")
        model = request.model
        if request.method == "object_aware" and request.detector is None:
            request.detector = yield from _load(request.detector_choice, "detector")
        detector = request.detector
        results = {}
        n = len(request.indices)
        for k, index in enumerate(request.indices):
            label = f"slice {k + 1}/{n}: " if n > 1 else ""
            results[index] = yield from _one_slice(request, index, model, detector, cancel,
                                                   (2 * k, 2 * n), label)
        return Outcome(results, model, detector)
    except RuntimeError as exc:  # torch's errors are RuntimeErrors, which superqt would swallow
        raise WorkerFailure(f"Everything mode failed: {exc}") from exc


def _load(choice: ModelChoice, what: str):
    from ..engine.weights import load_model

    yield Progress(0, 1, f"loading the {what} {choice.name}…")
    return load_model(choice.name, checkpoint=choice.checkpoint or None, device=choice.device or None)


def _one_slice(request: Request, index, model, detector, cancel, part, label):
    """Embed (or take from the cache) and segment one slice: two halves of its progress."""
    source = request.source
    raw = source.read(index)
    rgb = source.to_rgb(raw)
    embedding = None
    if request.method != "fastsam":
        key = EmbeddingKey(slice_digest(raw), model_identity(model), source.normalisation())
        entry = request.cache.get(key)
        if entry is None:
            features = yield from nested(_encode(model, rgb, cancel), part[0], part[1],
                                         f"{label}encoding ")
            entry = CachedEmbedding(features.detach(), rgb.shape[:2])
            request.cache.put(key, entry)
        embedding = entry.features
    job = iter_segment_everything(rgb, model, request.method, detector, embedding=embedding,
                                  **request.params)
    return (yield from nested(job, part[0] + 1, part[1], label))


def _encode(model, rgb, cancel):
    features = yield from iter_encode(Predictor(model), rgb, cancel)
    return features


@dataclass
class RunningJob:
    worker: object
    cancel_event: threading.Event
    request: Request

    def cancel(self) -> None:
        self.cancel_event.set()  # stops the encoder within one block
        self.worker.quit()  # stops the generator at its next report


def start_everything(request: Request, *, on_progress, on_done, on_error, on_aborted,
                     on_finished) -> RunningJob:
    cancel = threading.Event()
    worker = create_worker(everything_job, request, cancel, _start_thread=False,
                           _ignore_errors=True)
    worker.yielded.connect(on_progress)
    worker.returned.connect(on_done)
    worker.errored.connect(on_error)
    worker.aborted.connect(on_aborted)
    worker.finished.connect(on_finished)
    job = RunningJob(worker, cancel, request)
    worker.start()
    return job


def detector_choice(path: str, device: str = "") -> ModelChoice:
    """The MobileSAMv2 detector from a file, or from the cache when ``path`` is empty."""
    return ModelChoice(DETECTOR_NAME, path.strip(), device)

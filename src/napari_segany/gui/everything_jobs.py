"""The everything run as a napari worker: load what is missing, then segment slice by slice.

The job is a generator (see ``engine.progress``): it yields Progress for the bar and returns
an :class:`Outcome` only when every requested slice is done.  Cancelling (``RunningJob.cancel``)
stops it at the next report (between two decoder batches, or within one encoder block): the
job closes its own generators there, in the worker thread (so the decoder's helper threads
are joined before the worker ends), and raises :class:`Cancelled` instead of returning:
nothing reaches the layers.

Slices are read inside the worker, one at a time (a stack is never copied whole), from the
array the run started with (``Request.data``), and image embeddings go through an
:class:`EmbeddingCache`, so running again with other parameters on the same slice only
re-runs the decoder.

A slice larger than the tiling threshold (``Request.tiling``, see
:class:`~..engine.tiling.settings.TilingSettings`) runs tile by tile instead, through
:func:`iter_segment_everything_tiled` (tile embeddings in the same cache); the slice is then
never resized, and (without a channel axis) converted to RGB one window at a time.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from napari.qt.threading import GeneratorWorker, create_worker

from ..engine.embeddings import (
    CachedEmbedding, EmbeddingCache, EmbeddingKey, model_identity, slice_digest, iter_encode,
)
from ..engine.errors import Cancelled, ImageError, WeightsNotFoundError
from ..engine.everything import (
    check_promptable, iter_segment_everything, iter_segment_everything_tiled,
)
from ..engine.everything.fastsam_method import check_fastsam_network
from ..engine.everything.object_aware import check_detector
from ..engine.everything.presets import DETECTOR_NAME
from ..engine.interactive import Predictor
from ..engine.progress import nested, Progress
from ..engine.tiling import TilingSettings, describe_tiles, model_input_size
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
    data: object = None  # the layer's array when the run started (None: the layer's data)
    generation: int = 0  # the widget's count of image changes when the run started
    tiling: TilingSettings = field(default_factory=TilingSettings)


@dataclass
class Outcome:
    results: dict  # slice index -> EverythingResult (unfiltered)
    model: object
    detector: object | None
    tiled: dict = field(default_factory=dict)  # slice index -> "tiled: ..." for tiled slices


def everything_job(request: Request, cancel: threading.Event):
    """Generator run by the worker; see the module docstring."""
    try:
        return (yield from stop_on_cancel(_segment(request, cancel), cancel))
    except RuntimeError as exc:  # torch's errors are RuntimeErrors, which superqt would swallow
        raise WorkerFailure(f"Everything mode failed: {exc}") from exc


def stop_on_cancel(job, cancel: threading.Event):
    """Run ``job``; at its first report after ``cancel`` is set, close it and raise Cancelled.

    Closing runs the job's ``finally`` blocks here, in the worker: the decoder's helper
    threads are joined before the worker ends (a worker merely told to quit would leave
    the suspended job, and its threads, to the garbage collector)."""
    while True:
        if cancel.is_set():
            job.close()
            raise Cancelled("Everything mode was cancelled; nothing was written.")
        try:
            report = next(job)
        except StopIteration as stop:
            return stop.value
        yield report


def _segment(request: Request, cancel: threading.Event):
    if request.model is None:  # kept on the request: a later failure keeps the load
        model = yield from _load(request.model_choice, "model", "Checkpoint")
        check_model_for(request.method, model)
        request.model = model
    model = request.model
    if request.method == "object_aware" and request.detector is None:
        detector = yield from _load(request.detector_choice, "detector", "Detector")
        check_detector(detector)
        request.detector = detector
    detector = request.detector
    outcome = Outcome({}, model, detector)
    n = len(request.indices)
    for k, index in enumerate(request.indices):
        label = f"slice {k + 1}/{n}: " if n > 1 else ""
        grid = request.tiling.plan(request.source.spatial_shape[-2:], model_input_size(model))
        if grid is None:
            job = _one_slice(request, index, model, detector, cancel, (2 * k, 2 * n), label)
        else:
            outcome.tiled[index] = describe_tiles(grid)
            job = nested(_tiled_slice(request, index, model, detector, grid), k, n, label)
        outcome.results[index] = yield from job
    return outcome


def check_model_for(method: str, model) -> None:
    """Refuse a loaded network of the wrong kind (e.g. a detector file as FastSAM) before
    it is kept for later runs."""
    if method == "fastsam":
        check_fastsam_network(model)
    else:
        check_promptable(model, method)


def _load(choice: ModelChoice, what: str, field_name: str):
    from ..engine.weights import load_model

    yield Progress(0, 1, f"loading the {what} {choice.name}…")
    try:
        return load_model(choice.name, checkpoint=choice.checkpoint or None,
                          device=choice.device or None)
    except WeightsNotFoundError as exc:
        raise gui_wording(exc, field_name) from None


def gui_wording(exc: Exception, field_name: str) -> Exception:
    """A missing-weights error telling the widget's user where to give the file."""
    from ..engine.weights import reword_remedy

    file_name = getattr(exc, "file_name", "") or "the file"
    return reword_remedy(exc, f"choose {file_name} in the {field_name} field (Browse…)")


def _one_slice(request: Request, index, model, detector, cancel, part, label):
    """Embed (or take from the cache) and segment one slice: two halves of its progress."""
    source = request.source
    raw = source.read(index, request.data)
    try:
        rgb = source.to_rgb(raw)
    except ImageError as exc:  # NaN, a flat or tiny slice: say which layer and slice
        raise _named(exc, source, index) from None
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


def _tiled_slice(request: Request, index, model, detector, grid):
    """Everything mode tile by tile on a large slice, read whole but converted per window
    (channel axes: per-channel percentiles of the slice, as untiled)."""
    source = request.source
    raw = source.read(index, request.data)
    try:
        image, contrast = ((source.to_rgb(raw), None) if source.channel_first
                           else (raw, source.layer.contrast_limits))
        return (yield from iter_segment_everything_tiled(
            image, model, request.method, detector, contrast, tile=grid.tile, halo=grid.halo,
            cache=request.cache, **request.params))
    except ImageError as exc:
        raise _named(exc, source, index) from None


def _named(exc: ImageError, source: ImageSource, index) -> ImageError:
    """The error of a slice (NaN, flat, tiny) saying which layer and slice."""
    where = f", slice {list(index)}" if index else ""
    return ImageError(f"{source.layer.name!r}{where}: {exc}")


def _encode(model, rgb, cancel):
    features = yield from iter_encode(Predictor(model), rgb, cancel)
    return features


@dataclass
class RunningJob:
    worker: object
    cancel_event: threading.Event
    request: Request

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def cancel(self) -> None:
        # The job stops at its next report (the encoder within one block) and closes its
        # generators itself; no worker.quit(), which would leave them suspended.
        self.cancel_event.set()


class SelfClosingWorker(GeneratorWorker):
    """A generator worker whose ``quit()`` asks the job to stop itself.

    napari calls ``quit()`` on its own (closing the viewer; Cancel in its activity panel):
    superqt would then stop iterating and leave the job suspended, with its helper threads,
    until garbage collection.  Setting the job's cancel event instead makes it stop at its
    next report and close its generators in the worker thread (see :func:`stop_on_cancel`)."""

    cancel_event: threading.Event | None = None

    def quit(self) -> None:
        if self.cancel_event is None:
            super().quit()
        else:
            self.cancel_event.set()


def start_everything(request: Request, *, on_progress, on_done, on_error, on_aborted,
                     on_finished) -> RunningJob:
    cancel = threading.Event()
    worker = create_worker(everything_job, request, cancel, _start_thread=False,
                           _ignore_errors=True, _worker_class=SelfClosingWorker)
    worker.cancel_event = cancel
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

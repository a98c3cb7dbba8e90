"""The everything run as a napari worker: load what is missing, then segment slice by slice.

The job is a generator (see ``engine.progress``): it yields Progress for the bar and returns
an :class:`Outcome` only when every requested slice is done.  Cancelling (``RunningJob.cancel``)
sets the event the engine job checks between two steps of a decoder batch (and between
encoder blocks): it raises :class:`Cancelled` within a fraction of a second, after closing
its decoder pool in the worker thread (its helper threads joined before the worker ends);
nothing reaches the layers.

At the end, every mask is measured (``result_features``), a linked run's masks get their 3D
ids (``iter_link_results``), and each slice's masks are selected with the filters (and
feature ranges) of the start and painted here (:func:`.painting.select_and_paint`): the
main thread only copies the label images.

Slices are read inside the worker, one at a time (a stack is never copied whole), from the
array the run started with (``Request.data``), and image embeddings go through an
:class:`EmbeddingCache`, so running again with other parameters on the same slice only
re-runs the decoder.

The slices go through the engine's one stack job, :func:`iter_segment_stack`: a slice
larger than the tiling threshold (``Request.tiling``, the engine's
:class:`~..engine.tiling.TilingSettings`) runs tile by tile (tile embeddings in the same
cache); the slice is then never resized, and (without a channel axis) converted to RGB one
window at a time.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from napari.qt.threading import GeneratorWorker, create_worker

from ...engine.embeddings import EmbeddingCache, slice_digest
from ...engine.errors import Cancelled, ImageError, WeightsNotFoundError
from ...engine.everything import iter_segment_stack
from ...engine.everything.methods import DETECTOR_NAME, check_detector, check_network
from ...engine.everything.stack import Plane
from ...engine.progress import Progress
from ...engine.tiling import TilingSettings, describe_tiles, model_input_size
from ...engine.workflows.mask_features import result_features
from ...engine.workflows.volume import iter_link_results
from ..shared.image_slice import ImageSource
from ..shared.workers import WorkerFailure, load_checked
from .model import everything_where
from .painting import select_and_paint
from .selection import SliceInput


@dataclass(frozen=True)
class ModelChoice:
    """What to load: registry name, checkpoint file ('' = cache/download), device ('' = auto),
    the encoder's precision ("auto", "fp32", "bf16"): another choice loads again."""

    name: str
    checkpoint: str = ""
    device: str = ""
    precision: str = "fp32"


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
    link_iou: float | None = None  # link the slices (indices: every slice of a 3D stack)
    filters: object = None  # the FilterSettings when the run started (None: nothing painted)
    ranges: dict = field(default_factory=dict)  # the feature filters when the run started


@dataclass
class Outcome:
    results: dict  # slice index -> EverythingResult (unfiltered)
    model: object
    detector: object | None
    tiled: dict = field(default_factory=dict)  # slice index -> "tiled: ..." for tiled slices
    features: dict = field(default_factory=dict)  # slice index -> table, row i: record i
    links: dict = field(default_factory=dict)  # slice index -> 3D id of record i at [i + 1]
    prepared: dict = field(default_factory=dict)  # slice index -> painted .selection.Selected


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


def _segment(request: Request, cancel: threading.Event | None = None):
    yield from load_missing(request)
    model, detector = request.model, request.detector
    planes = (_plane(request, index) for index in request.indices)
    results = yield from iter_segment_stack(
        planes, len(request.indices), model, request.method, detector, tiling=request.tiling,
        cache=request.cache, unit="slice", cancel=cancel, **request.params)
    outcome = Outcome(dict(zip(request.indices, results)), model, detector)
    outcome.features = yield from _measure(request, outcome.results)
    if request.link_iou is not None:
        tables = yield from iter_link_results(results, request.link_iou)
        outcome.links = dict(zip(request.indices, tables))
    if request.filters is not None:  # here, not on the main thread (see .painting)
        yield Progress(1, 1, "painting the result…")
        inputs = [SliceInput(i, r, outcome.features.get(i), outcome.links.get(i))
                  for i, r in outcome.results.items()]
        outcome.prepared = select_and_paint(inputs, request.filters, request.ranges)
    grid = request.tiling.plan(request.source.spatial_shape[-2:], model_input_size(model))
    if grid is not None:  # every slice of a layer has the same shape
        outcome.tiled = {index: describe_tiles(grid) for index in request.indices}
    return outcome


def _measure(request: Request, results: dict):
    """The table of every slice's masks, with the raw pixels' intensities (read again, one
    slice at a time)."""
    tables = {}
    for k, (index, result) in enumerate(results.items()):
        yield Progress(k, len(results), f"measuring the objects of slice {k + 1}/{len(results)}")
        tables[index] = result_features(result, request.source.read(index, request.data))
    return tables


def _plane(request: Request, index) -> Plane:
    """A slice as the engine takes it, read now (one at a time), named in errors and keyed as
    the interactive widget keys it (its raw pixels and normalisation); channel axes: each
    channel stretched by its own percentiles (the whole slice is converted here)."""
    source = request.source
    raw = source.read(index, request.data)
    where = f", slice {list(index)}" if index else ""
    name = f"{source.layer.name!r}{where}"
    if not source.channel_first:
        return Plane(raw, source.layer.contrast_limits, None, source.normalisation(), name)
    try:
        rgb = source.to_rgb(raw)
    except ImageError as exc:  # NaN, a flat or tiny slice: say which layer and slice
        raise ImageError(f"{name}: {exc}") from None
    return Plane(rgb, None, slice_digest(raw), source.normalisation(), name)


def load_missing(request):
    """Load the model, and for object-aware prompts the detector, that ``request`` (this
    module's Request, or a workflow dock's) does not hold yet, each checked for the method.
    Kept on the request: a later failure of the run keeps what was loaded."""
    if request.model is None:
        model = yield from _load(request.model_choice, "model", "Checkpoint")
        check_network(request.method, model)
        request.model = model
    if request.method == "object_aware" and request.detector is None:
        detector = yield from _load(request.detector_choice, "detector", "Detector")
        check_detector(detector)
        request.detector = detector


def _load(choice: ModelChoice, what: str, field_name: str):
    yield Progress(0, 1, f"loading the {what} {choice.name}…")
    try:  # a chosen file is checked first: a wrong one is refused before anything is built
        return load_checked(choice.name, choice.checkpoint or None, choice.device or None,
                            everything_where, choice.precision)
    except WeightsNotFoundError as exc:
        raise gui_wording(exc, field_name) from None


def gui_wording(exc: Exception, field_name: str) -> Exception:
    """A missing-weights error telling the widget's user where to give the file."""
    from ...engine.weights import reword_remedy

    file_name = getattr(exc, "file_name", "") or "the file"
    return reword_remedy(exc, f"choose {file_name} in the {field_name} field (Browse…)")


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


def detector_choice(path: str, device: str = "", precision: str = "fp32") -> ModelChoice:
    """The MobileSAMv2 detector from a file, or from the cache when ``path`` is empty (its
    network in the model's precision)."""
    return ModelChoice(DETECTOR_NAME, path.strip(), device, precision)

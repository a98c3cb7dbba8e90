"""What a worker keeps between tasks: its models and its open inputs (one copy per process).

* :func:`worker_models`: the model (and detector) of a :class:`~.settings.ModelRef`, loaded
  on the first task that needs it and kept for the process's life (a dask worker process,
  a ``processes`` pool process, or the calling process for ``threads`` / ``synchronous``);
  concurrent first tasks of one process wait for one load;
* :func:`open_cached`: inputs kept open (a TIFF's page index is parsed once per process);
* :func:`prepare_thread`: the torch intra-op threads of the thread that runs a task, set
  for that thread only (``torch_state.limit_this_thread``): a worker of N on a machine of
  M cores computes with M / N threads, the caller's threads keep theirs.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict

from .readers import LazyImage, open_source
from .settings import ModelRef

_MODELS: dict[str, tuple] = {}
_MODEL_LOCK = threading.Lock()
_OPEN: OrderedDict[tuple, LazyImage] = OrderedDict()
_OPEN_LOCK = threading.Lock()
OPEN_LIMIT = 8  # inputs kept open per process
LOADS = {"count": 0}  # model loads in this process (benchmarks and tests read it)


def worker_models(ref: ModelRef) -> tuple:
    """(model, detector or None) for ``ref``, loaded once per process."""
    with _MODEL_LOCK:
        models = _MODELS.get(ref.cache_key)
        if models is None:
            models = _load(ref)
            _MODELS[ref.cache_key] = models
            LOADS["count"] += 1
        return models


def _load(ref: ModelRef) -> tuple:
    from ..everything.methods import DETECTOR_NAME, check_detector, check_network
    from ..weights import load_model

    model = load_model(ref.spec, checkpoint=ref.checkpoint, device=ref.device,
                       precision=ref.precision)
    if ref.method == "embed":
        return model, None
    check_network(ref.method, model)
    if ref.method != "object_aware":
        return model, None
    detector = load_model(DETECTOR_NAME, checkpoint=ref.detector, device=ref.device,
                          precision=ref.precision)
    check_detector(detector)
    return model, detector


def seed_models(ref: ModelRef, models: tuple) -> None:
    """Use models the caller loaded already (in-process schedulers: no second load)."""
    with _MODEL_LOCK:
        _MODELS[ref.cache_key] = models


def open_cached(path: str, level: int) -> LazyImage:
    """The input at ``path`` opened lazily, kept among the last few opened."""
    key = (str(path), int(level), os.stat(path).st_mtime_ns)  # a rewritten file is reopened
    with _OPEN_LOCK:
        image = _OPEN.get(key)
        if image is not None:
            _OPEN.move_to_end(key)
            return image
    image = open_source(path, level)
    with _OPEN_LOCK:
        _OPEN[key] = image
        while len(_OPEN) > OPEN_LIMIT:
            _, old = _OPEN.popitem(last=False)
            old.close()
    return image


def forget_inputs() -> None:
    """Close every kept input (the caller does it when a run ends)."""
    with _OPEN_LOCK:
        while _OPEN:
            _OPEN.popitem()[1].close()


def prepare_thread(threads: int | str | None) -> None:
    """Give the calling (pool) thread ``threads`` intra-op threads; None leaves it alone (the
    ``synchronous`` scheduler); "auto" (a cluster's worker): its cores over its task threads
    (dask's nanny starts workers with OMP_NUM_THREADS=1, which would leave one)."""
    if threads is None:
        return
    if threads == "auto":
        from distributed import get_worker

        threads = max(1, (os.cpu_count() or 1) // max(1, get_worker().state.nthreads))
    from .. import torch_state

    torch_state.limit_this_thread(threads)

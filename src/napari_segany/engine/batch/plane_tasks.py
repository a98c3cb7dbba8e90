"""The tasks of one plane (and the per-file contrast before them), run by the workers.

Every task is a module-level function (pickled by reference) of a :class:`TaskContext` (the
settings, ~1 KB), an :class:`~.plan.ImageJob` and the results of the tasks it depends on.
It returns a small JSON-able value (counts, a contrast), or a :class:`Failed` for an input
that cannot be read or segmented (the run goes on with the others); a task given a Failed
returns it at once.  Wrong weights stop the whole run (the error is raised: every task would
fail alike).  Each task writes its outputs, then its marker (:mod:`.markers`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, WeightsNotFoundError
from . import ngff
from .markers import CANCEL_FILE, read_marker, write_marker
from .objects import plane_rows
from .plan import ImageJob, PlaneView
from .settings import BatchSettings, ModelRef
from .workers import open_cached, prepare_thread, worker_models


@dataclass(frozen=True)
class TaskContext:
    """What every task needs besides its image: the settings, the models, the torch threads
    of a worker thread (None: leave them), the run's state folder (its cancel flag)."""

    settings: BatchSettings
    model_ref: ModelRef
    torch_threads: int | str | None
    state_root: str


@dataclass(frozen=True)
class Failed:
    """An input that could not be processed: the task (``stage``) and the error's message."""

    stage: str
    message: str


def task(stage: str):
    """Decorate a task: pass Failed inputs through, skip work once cancelled (a file every
    worker sees), turn an input's errors into a Failed."""
    def decorate(function):
        @functools.wraps(function)
        def wrapper(ctx: TaskContext, job: ImageJob, *args):
            failed = next((a for a in args if isinstance(a, Failed)), None)
            if failed is not None:
                return failed
            if (Path(ctx.state_root) / CANCEL_FILE).exists():
                return Failed(stage, "cancelled")
            try:
                return function(ctx, job, *args)
            except (CheckpointError, WeightsNotFoundError):
                raise  # the run's weights: stop everything
            except Exception as exc:  # noqa: BLE001 - this input only; the summary names it
                return Failed(stage, f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc))
        return wrapper
    return decorate


@task("contrast")
def contrast_task(ctx: TaskContext, job: ImageJob):
    """The file's intensity mapping, read plane by plane: [lo, hi] or None (uint8 as is)."""
    from ..images.contrast import napari_contrast_limits, stack_contrast

    view = PlaneView(open_cached(job.source, job.level), job.layout)
    if ctx.settings.task == "embed":
        limits = napari_contrast_limits(view, job.layout.colour is not None)
    else:
        limits = stack_contrast(view, job.layout.leading_shape)
    value = list(limits) if limits is not None else None
    write_marker(job.marker("contrast"), {"limits": value})
    return value


@task("plane")
def plane_task(ctx: TaskContext, job: ImageJob, k: int, contrast):
    """Everything mode on plane ``k``: its image levels, its per-plane ids (scratch
    ``local``), its object rows (marker).  Returns ``{"n": objects}``."""
    from ..everything import iter_segment_stack
    from ..progress import run

    done = read_marker(job.marker(f"plane-{k}"))
    if done is not None:
        return {"n": done["n"]}
    s = ctx.settings
    prepare_thread(ctx.torch_threads)
    model, detector = worker_models(ctx.model_ref)
    plane = job.layout.read_plane(open_cached(job.source, job.level), k)
    ngff.write_plane(ngff.open_levels(Path(job.out)), job.array_index(k), plane)
    limits = tuple(contrast) if contrast is not None else None
    results = run(iter_segment_stack([plane], 1, model, s.method, detector, limits,
                                     tiling=s.tiling, **s.params))
    kept = s.filters.apply(results[0])
    labels = kept.paint(out=np.zeros(job.layout.plane_shape, np.uint32))
    job.scratch("local")[k] = labels
    write_marker(job.marker(f"plane-{k}"), {"n": len(kept), "rows": plane_rows(labels, kept.records)})
    return {"n": len(kept)}


@task("embed")
def embed_task(ctx: TaskContext, job: ImageJob, k: int, contrast):
    """The embeddings of plane ``k`` (whole, or its tiles) into the store, as ``napari-segany
    embed`` computes them.  Returns ``{"computed": n, "reused": m}``."""
    from ..embeddings import EmbeddingStore, iter_encode
    from ..errors import ImageError
    from ..images.io import plane_problem
    from ..interactive import Predictor
    from ..progress import run
    from ..tiling import embedding_items

    done = read_marker(job.marker(f"embed-{k}"))
    if done is not None:
        return done
    prepare_thread(ctx.torch_threads)
    model, _ = worker_models(ctx.model_ref)
    plane = job.layout.read_plane(open_cached(job.source, job.level), k)
    problem = plane_problem(plane)
    if problem:
        raise ImageError(f"plane {k}: {problem}")
    store = EmbeddingStore(job.out, dtype=ctx.settings.store_dtype)
    items = embedding_items(model, plane, tuple(contrast), ctx.settings.tiling)
    todo = [(key, read) for key, read in items if store.get(key) is None]
    for key, read in todo:
        _put(store, key, run(iter_encode(Predictor(model), read())))
    if store.writes < len(todo):
        raise OSError(f"{len(todo) - store.writes} embedding(s) of plane {k} could not be "
                      f"written to {job.out} (see the warnings)")
    result = {"computed": len(todo), "reused": len(items) - len(todo)}
    write_marker(job.marker(f"embed-{k}"), result)
    return result


def _put(store, key, embedding, attempts: int = 3) -> None:
    """``store.put``, again when a worker creating the same folders at the same moment made
    it fail (the store warns and goes on); the last attempt's warnings are shown."""
    import warnings

    for attempt in range(attempts):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            store.put(key, embedding)
        if store.has(key) or attempt == attempts - 1:
            for warning in seen:
                warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                       warning.lineno)
            return

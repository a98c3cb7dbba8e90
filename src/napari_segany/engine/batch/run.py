"""A batch from inputs to outputs: plan, graph, run on a scheduler, summary.

:func:`iter_batch` is the job (yields Progress per finished task, returns a
:class:`~.summary.BatchSummary`); closing it (a callback returning False, Ctrl+C) raises a
cancel flag every worker sees, waits for the running tasks, and leaves the finished ones
recorded: the same call resumes.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np

from ..errors import Cancelled, ImageError, SegAnyError
from ..images.io import unwritable_reason
from ..progress import Job, Progress
from .graph import build_graph
from .markers import CANCEL_FILE, STATE_DIR, check_run
from .objects import concatenate_csv
from .plan import ImageJob, PlaneView, plan_image
from .plane_tasks import Failed, TaskContext
from .schedulers import Execution, parse_scheduler
from .settings import BatchSettings
from .sources import expand_inputs
from .summary import BatchSummary, ImageReport

OBJECTS_CSV = "objects.csv"
CANCEL_WAIT_S = 600.0


def make_settings(task: str, options: dict) -> BatchSettings:
    """BatchSettings from keyword options; names that are not settings are method parameters
    (checked by the method)."""
    names = {f.name for f in fields(BatchSettings)} - {"task", "params"}
    chosen = {k: v for k, v in options.items() if k in names and v is not None}
    params = {k: v for k, v in options.items() if k not in names}
    return BatchSettings(task=task, params=params, **chosen)


def iter_batch(inputs, output, task: str = "everything", *, scheduler: str = "threads",
               overwrite: bool = False, dry_run: bool = False,
               settings: BatchSettings | None = None, **options) -> Job[BatchSummary]:
    """Generator form of :func:`napari_segany.batch` (see there): yields Progress (step =
    tasks finished, total = tasks to run; the first report names the scheduler and its
    dashboard), returns the BatchSummary."""
    settings = (settings or make_settings(task, options)).check()
    spec = parse_scheduler(scheduler)
    out = Path(output).expanduser().absolute()
    reason = unwritable_reason(out / STATE_DIR / "run.json")
    if out.is_file() or reason:
        raise SegAnyError(f"Cannot write the batch's outputs in {out}: "
                          f"{reason or 'it is a file'}. Give a folder you can write.")
    summary = BatchSummary(scheduler=str(spec))
    skipped: list[Path] = []
    paths = expand_inputs(inputs if isinstance(inputs, (list, tuple)) else [inputs], skipped)
    summary.skipped_files = [str(p) for p in skipped]
    if not dry_run:
        check_run(out / STATE_DIR, settings.signature(), overwrite)
    jobs = _plan(paths, out, settings, summary, prepare=not dry_run)
    execution = Execution(spec)
    ctx = TaskContext(settings, settings.model_ref(), execution.torch_threads,
                      str(out / STATE_DIR))
    graph = build_graph(ctx, jobs, {job.stem: known_contrast(settings, job) for job in jobs})
    summary.reused = len(graph.reused)
    if dry_run:
        summary.tasks = [(k, "todo") for k in graph.nodes] + [(k, "done") for k in graph.reused]
        _report(jobs, graph, {}, summary, pending="todo")
        return summary
    results = {}
    if graph.nodes:  # a finished batch starts no scheduler
        with execution:
            summary.dashboard = execution.dashboard
            yield Progress(0, len(graph.nodes), _opening(spec, execution, len(graph.nodes)))
            results = yield from _run(execution, graph.nodes, out / STATE_DIR)
    summary.computed = len(results)
    _report(jobs, graph, results, summary)
    if settings.task != "embed" and jobs:
        parts = [Path(j.state) / OBJECTS_CSV for j in jobs]
        summary.objects_csv = str(concatenate_csv(parts, out / OBJECTS_CSV))
    return summary


def _opening(spec, execution: Execution, total: int) -> str:
    text = f"{total} task(s) on {spec}"
    return text + (f"; dask dashboard: {execution.dashboard}" if execution.dashboard else "")


def _run(execution: Execution, nodes: dict, state: Path):
    results: dict = {}
    stream = execution.iter_results(nodes)
    try:
        for key, value in stream:
            results[key] = value
            yield Progress(len(results), len(nodes), str(key))
    except BaseException:
        (state / CANCEL_FILE).touch()  # tasks not started yet return at once
        stream.close()
        execution.join(CANCEL_WAIT_S)
        (state / CANCEL_FILE).unlink(missing_ok=True)
        raise
    return results


def _plan(paths, out: Path, settings, summary: BatchSummary, prepare: bool) -> list[ImageJob]:
    """One ImageJob per readable input; the others are reported as failed."""
    jobs = []
    for path in paths:
        try:
            job = plan_image(path, out, settings, prepare=prepare)
        except (ImageError, OSError) as exc:
            summary.images.append(ImageReport(path.name, "failed", error=f"open: {exc}"))
            continue
        jobs.append(job)
        summary.images.append(ImageReport(path.name, "planned", job.layout.n_planes,
                                          output=job.out))
    return jobs


class _NeedsPixels(Exception):
    """The contrast rule wanted to read pixels: a contrast task will."""


class _Unread:
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def __getitem__(self, index):
        raise _NeedsPixels


def known_contrast(settings: BatchSettings, job: ImageJob):
    """The contrast of ``job`` when no pixel is needed (given, or the rule decides from the
    dtype alone, e.g. uint8), else "read" (a contrast task computes it)."""
    from ..images.contrast import napari_contrast_limits, stack_contrast

    if settings.contrast_limits is not None:
        return [float(v) for v in settings.contrast_limits]
    view = PlaneView(_Unread(job.dtype), job.layout)
    try:
        if settings.task == "embed":
            limits = napari_contrast_limits(view, job.layout.colour is not None)
        else:
            limits = stack_contrast(view, job.layout.leading_shape)
    except _NeedsPixels:
        return "read"
    return list(limits) if limits is not None else None


def _report(jobs, graph, results: dict, summary: BatchSummary, pending: str = "") -> None:
    """Each job's status from its last tasks' values (``pending``: the dry run's word for
    an image with work left)."""
    for job in jobs:
        report = next(r for r in summary.images if r.input == job.name)  # stems are unique
        finals = graph.finals[job.stem]
        values = [_value(v, results) for v in (finals if isinstance(finals, list) else [finals])]
        failed = next((v for v in values if isinstance(v, Failed)), None)
        if failed is not None:
            report.status, report.error = "failed", f"{failed.stage}: {failed.message}"
        elif any(v is None for v in values):
            report.status, report.error = (pending, "") if pending else ("failed", "not finished")
        else:
            report.status = "done"
            report.objects = sum(int(v.get("objects", v.get("computed", 0))) for v in values)


def _value(final, results: dict):
    key = getattr(final, "key", None)
    return results.get(key) if key is not None else final


def batch(inputs, output, task: str = "everything", *, scheduler: str = "threads",
          overwrite: bool = False, dry_run: bool = False, callback=None,
          **options) -> BatchSummary:
    """Run a batch to the end (see :func:`iter_batch`); ``callback`` sees each Progress and
    may return False to cancel (raises Cancelled; finished tasks are kept for a rerun)."""
    from ..progress import run

    try:
        return run(iter_batch(inputs, output, task, scheduler=scheduler, overwrite=overwrite,
                              dry_run=dry_run, **options), callback)
    except Cancelled:
        raise Cancelled("batch cancelled; finished tasks are kept: the same call resumes") from None

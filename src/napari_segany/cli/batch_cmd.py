"""``napari-segany batch``: folders, plates and large volumes on dask, resumably.

    napari-segany batch everything plates/ -o results/ --scheduler local:4
    napari-segany batch auto3d stacks/*.tif -o results/ --axes TZYX --contrast 100 2000
    napari-segany batch embed slides/ -o results/ --scheduler tcp://10.0.0.5:8786

Every option of ``napari-segany everything`` works here too (one parser builder,
``everything_options``).  Outputs: ``OUT/<stem>.ome.zarr`` (image + ``labels/segany``),
``OUT/objects.csv``; ``embed`` fills the store ``OUT/embeddings``.  Running the same command
again resumes (finished tasks are skipped); an input that cannot be read is listed in the
closing table and the exit status is 1.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .everything_options import add_everything_options

TASKS = ("everything", "auto3d", "track", "embed")  # literal: parsing imports no torch
EXAMPLES = """examples:
  napari-segany batch everything plates/ -o results/ --scheduler local:4
  napari-segany batch auto3d "stacks/*.tif" -o results/ --axes TZYX --link-iou 0.5
  napari-segany batch track movie.tif -o results/ --axes TCYX --channel 1
  napari-segany batch embed slides/ -o results/ --model sam_vit_b --scheduler tcp://host:8786
  napari-segany batch everything plates/ -o results/ --dry-run

Rerun the same command to resume after an interruption: finished tasks are skipped."""


def add_parser(sub) -> None:
    p = sub.add_parser("batch", help="segment or embed many images on dask (resumable)",
                       description="Run a task on every plane of many images, on dask.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=TASKS, help="everything, auto3d (3D objects), track, embed")
    p.add_argument("inputs", nargs="+", type=Path,
                   help="image files (TIFF/PNG/JPEG/NPY), OME-Zarr folders, folders or globs")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    add_everything_options(p, ("discard an earlier run in OUT and start again",
                               "resume an earlier run in OUT (the default)"))
    g = p.add_argument_group("inputs and tasks")
    g.add_argument("--axes", help="axis letters of the inputs (T, C, Z, Y, X, S), e.g. TCZYX")
    g.add_argument("--channel", type=int, help="the channel to segment (index on C or S)")
    g.add_argument("--level", type=int, default=0, help="resolution level of pyramidal inputs "
                   "(OME-Zarr, TIFF; %(default)s = full resolution)")
    g.add_argument("--link-iou", type=float, default=0.5, help="auto3d: min IoU of masks "
                   "linked across slices (%(default)s)")
    g.add_argument("--track-iou", type=float, default=0.3, help="track: min IoU of masks "
                   "linked across frames (%(default)s)")
    g.add_argument("--no-divisions", action="store_true", help="track: no cell divisions")
    g.add_argument("--dtype", choices=("float16", "float32"), default="float16",
                   help="embed: stored precision (%(default)s)")
    r = p.add_argument_group("running")
    r.add_argument("--scheduler", default="threads", help="synchronous, threads (default), "
                   "processes, local:N (N worker processes) or tcp://host:port (a dask cluster)")
    r.add_argument("--dry-run", action="store_true", help="list the tasks, run nothing")
    p.set_defaults(run=run_batch, parser=p)


def run_batch(args) -> int:
    from ..engine.errors import SegAnyError

    try:
        settings = batch_settings(args)
        from ..engine.batch.schedulers import parse_scheduler

        scheduler = parse_scheduler(args.scheduler)
    except (ValueError, SyntaxError) as exc:
        if isinstance(exc, SegAnyError):
            raise
        args.parser.error(str(exc))
    if scheduler.kind in ("synchronous", "threads") and not args.dry_run:
        _load_here(settings)  # wrong weights stop before any image is read
    return _drive(args, settings)


def batch_settings(args):
    """The engine's BatchSettings from the parsed options (checked)."""
    from ..engine.batch import BatchSettings
    from .everything_options import EverythingOptions

    o = EverythingOptions.from_args(args)
    model = o.model if args.model or args.task != "embed" else None  # embed: its own default
    return BatchSettings(args.task, o.method, model, o.checkpoint, o.detector, o.device,
                         o.params, o.filters, o.contrast, o.tiling, args.axes, args.channel,
                         args.level, args.link_iou, args.track_iou, not args.no_divisions,
                         args.dtype, o.precision).check()


def _load_here(settings) -> None:
    """Load and check the models in this process (command-line wording in their errors) and
    hand them to the in-process workers."""
    from ..engine.batch.workers import seed_models
    from .everything_options import EverythingOptions
    from .loading import load_checked_models

    ref = settings.model_ref()
    options = EverythingOptions(settings.method, settings.spec.name, settings.checkpoint,
                                settings.detector, settings.device, {}, None, None, None,
                                ref.precision)
    seed_models(ref, load_checked_models(options))


def _drive(args, settings) -> int:
    from tqdm import tqdm

    from ..engine.batch import iter_batch

    job = iter_batch(args.inputs, args.output, settings=settings, scheduler=args.scheduler,
                     overwrite=args.overwrite, dry_run=args.dry_run)
    bar = None
    try:
        while True:
            try:
                report = next(job)
            except StopIteration as stop:
                summary = stop.value
                break
            if bar is None:
                print(report.message, file=sys.stderr)
                bar = tqdm(total=report.total, file=sys.stderr, disable=args.quiet, unit="task",
                           bar_format="{percentage:3.0f}%|{bar}| {n}/{total} "
                           "{elapsed}<{remaining} {postfix}")
            bar.update(report.step - bar.n)
            bar.set_postfix_str(report.message, refresh=False)
    finally:
        if bar is not None:
            bar.close()
    return _report(summary, args.dry_run)


def _report(summary, dry_run: bool) -> int:
    err = sys.stderr
    if summary.skipped_files:
        print(f"skipped {len(summary.skipped_files)} file(s) that are not images", file=err)
    if dry_run:
        for key, status in summary.tasks:
            print(f"{status:5s} {key}")
        todo = sum(status == "todo" for _, status in summary.tasks)
        print(f"{todo} task(s) to run, {len(summary.tasks) - todo} finished already "
              f"({summary.scheduler}); nothing was run.", file=err)
    print(summary.table(), file=err)
    if not dry_run:
        print(summary.closing_line(), file=err)
    if summary.objects_csv:
        print(f"objects: {summary.objects_csv}", file=err)
    return 0 if summary.ok else 1

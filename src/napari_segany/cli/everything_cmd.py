"""``napari-segany everything``: every object of images into label TIFFs, with a progress bar.

    napari-segany everything cells.tif -o cells_labels.tif --method object_aware \\
        --model mobile_sam --detector ObjectAwareModel.pt
    napari-segany everything plates/ -o labels/            # a folder: one TIFF per image
    napari-segany everything slide.tif -o slide_labels.tif --tile 1024 --halo 128

Inputs: TIFF, PNG, JPEG, NPY files or folders of them; (N, H, W[, 3]) arrays are stacks of N
planes and give (N, H, W) labels.  Planes larger than the tiling threshold (as the widgets
and ``napari-segany embed``) run tile by tile, duplicates merged across tiles.  Outputs are written atomically as each image finishes, so
Ctrl+C keeps the finished ones and leaves no partial file.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..engine.errors import SegAnyError
from .loading import add_tiling_options

FILTER_HELP = "post-filter (omitted = off); see docs/everything.md"
# Literal copies, so that building the parser imports no torch (a test checks them against
# engine.everything.METHODS and presets.FilterSettings).
METHODS = ("grid", "object_aware", "fastsam")
MIN_AREA, MAX_AREA_FRACTION = 50, 0.5
EXAMPLES = """examples:
  napari-segany everything cells.tif -o cells_labels.tif
  napari-segany everything cells.tif -o out/ --method object_aware --detector ObjectAwareModel.pt
  napari-segany everything plates/ -o labels/ --method fastsam --min-area 100
  napari-segany everything slide.tif -o slide_labels.tif --tile 1024 --halo 128

A (N, H, W) or (N, H, W, 3) file is a stack of N planes: its labels are (N, H, W).
Labels of each plane are numbered 1..n, the smallest masks painted on top."""


def add_parser(sub) -> None:
    p = sub.add_parser("everything", help="segment every object of images into label TIFFs",
                       description="Segment every object of images into label TIFFs.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", type=Path, help="image files (TIFF/PNG/JPEG/NPY) or folders")
    p.add_argument("-o", "--output", required=True, type=Path,
                   help="output .tif for one input image, else a folder (<name>_labels.tif inside)")
    p.add_argument("--method", choices=METHODS, default="grid", help="default: %(default)s")
    p.add_argument("--model", help="registry model (default: mobile_sam, or fastsam_s for fastsam)")
    p.add_argument("--checkpoint", type=Path, help="weights file of --model (default: cache/download)")
    p.add_argument("--detector", type=Path, help="object_aware: ObjectAwareModel.pt (default: cache)")
    p.add_argument("--device", help="cpu, cuda or mps (default: the fastest available)")
    m = p.add_argument_group("method parameters (official defaults)")
    m.add_argument("--points-per-side", type=int, help="grid: points per image side (32)")
    m.add_argument("--pred-iou-thresh", type=float, help="grid: min predicted IoU (0.88)")
    m.add_argument("--stability-thresh", type=float, dest="stability_score_thresh",
                   help="grid: min stability score (0.95)")
    m.add_argument("--conf", type=float, help="object_aware, fastsam: min detection score (0.4)")
    m.add_argument("--max-det", type=int, help="object_aware, fastsam: max objects per image (300)")
    m.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="any other method parameter, e.g. -p crop_n_layers=1 -p box_nms_thresh=0.7")
    f = p.add_argument_group("filters, applied after the run (microscopy defaults)")
    f.add_argument("--min-area", type=int, default=MIN_AREA,
                   help="drop masks smaller than this many pixels (%(default)s; 0 = off)")
    f.add_argument("--max-area-fraction", type=float, default=MAX_AREA_FRACTION,
                   help="drop masks larger than this fraction of the image, usually the "
                   "background (%(default)s; 1 = off)")
    f.add_argument("--min-score", type=float, help=FILTER_HELP)
    f.add_argument("--min-stability", type=float, help=FILTER_HELP)
    f.add_argument("--max-contained", type=float, help="drop masks with more than this fraction "
                   "inside a larger one (e.g. 0.9)")
    f.add_argument("--no-filters", action="store_true", help="keep every mask the method returns")
    add_tiling_options(p, "large images (as the widgets: large planes are tiled)",
                       whole="run every plane whole (downscaled to the model input)")
    p.add_argument("--contrast", nargs=2, type=float, metavar=("LO", "HI"),
                   help="intensity mapped to black/white (default: uint8 as is, else the 0.5/99.5 "
                   "percentiles of each file, shared by all its planes)")
    exists = p.add_mutually_exclusive_group()
    exists.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    exists.add_argument("--skip-existing", action="store_true", help="leave existing outputs (resume)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_everything, parser=p)


def run_everything(args) -> int:
    from .everything_run import EverythingRun

    try:
        job = EverythingRun.from_args(args)
    except (ValueError, SyntaxError) as exc:
        if isinstance(exc, SegAnyError):
            raise
        args.parser.error(str(exc))  # exits with the usage line, status 2
    return job.run(quiet=args.quiet, stream=sys.stderr)

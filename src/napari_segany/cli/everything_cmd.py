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
from .everything_options import MAX_AREA_FRACTION, METHODS, MIN_AREA, add_everything_options  # noqa: F401

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
    add_everything_options(p)
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

"""``napari-segany embed``: precompute image embeddings into a store, resumably.

    napari-segany embed stack.tif --model mobile_sam --out ~/embeddings
    napari-segany embed slide.tif --model sam_vit_b --out store/ --tile 1024 --halo 128

Every plane of the inputs (TIFF, PNG/JPEG, NPY; (N, H, W[, 3]) arrays are N planes) is
embedded into the zarr store; planes larger than the tiling threshold are embedded tile by
tile.  Each slice/tile is marked done as soon as it is on disk, so an interrupted run (Ctrl+C,
a crash) is resumed by running the same command again: finished work is skipped.

The store is found again by the napari widget (and the API) from the slice pixels, the model
weights and the normalisation.  The default normalisation is napari's default contrast
limits for the file (0..255 for uint8, else the data range), so the widget reuses the store
without settings; with ``--contrast LO HI``, give the layer the same contrast limits.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .loading import (
    add_precision_option, add_tiling_options, chosen_precision, load_for_command, missing_files,
    tiling_settings,
)

EXAMPLES = """examples:
  napari-segany embed stack.tif --model mobile_sam --out embeddings/
  napari-segany embed slide.tif --model sam_vit_b --checkpoint sam_vit_b_01ec64.pth \\
      --out embeddings/ --tile 1024 --halo 128
Run the same command again to resume after an interruption."""


def add_parser(sub) -> None:
    p = sub.add_parser("embed", help="precompute image embeddings into a store (resumable)",
                       description="Precompute image embeddings into an on-disk store.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", type=Path, help="image or stack files (TIFF/PNG/JPEG/NPY)")
    p.add_argument("--out", type=Path, help="store folder (default: the user cache store, "
                   "see docs/embeddings.md)")
    p.add_argument("--model", default="mobile_sam", help="registry model (default: %(default)s)")
    p.add_argument("--checkpoint", type=Path, help="weights file of --model (default: cache/download)")
    p.add_argument("--device", help="cpu, cuda or mps (default: the fastest available)")
    add_precision_option(p)
    add_tiling_options(p, "tiling (as the widget: large planes are tiled)",
                       whole="embed every plane whole (downscaled)")
    p.add_argument("--contrast", nargs=2, type=float, metavar=("LO", "HI"),
                   help="intensity mapped to black/white (default: napari's default contrast "
                   "limits of the file: 0..255 for uint8, else its data range)")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16",
                   help="stored precision (%(default)s: half the disk; see docs/embeddings.md)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run_embed, parser=p)


def run_embed(args) -> int:
    from ..engine.embeddings import EmbeddingStore, default_store_dir
    from ..engine.errors import ImageError, SegAnyError
    from ..models.registry import PROMPTABLE, get_spec, list_models

    if get_spec(args.model).task != PROMPTABLE:
        args.parser.error(f"--model {args.model} has no image encoder to precompute; use a "
                          f"promptable model ({', '.join(list_models(PROMPTABLE)[:4])}...).")
    try:
        tiling = tiling_settings(args, args.model)
        precision = chosen_precision(args)
    except ValueError as exc:
        args.parser.error(str(exc))
    for path in args.inputs:
        if not path.expanduser().is_file():
            raise FileNotFoundError(f"{path} is not an image file.")
    check_before_loading(args)
    store = EmbeddingStore(args.out or default_store_dir(), dtype=args.dtype)
    store.remove_stale_partials()
    model = load_for_command(args.model, args.checkpoint, args.device, precision)
    plan, problems = [], []
    for path in args.inputs:
        try:
            plan.extend(plan_units(path, model, store, args, tiling, problems))
        except ImageError as exc:  # this file only: say so, embed the others
            problems.append(f"{exc} Skipped.")
        except ValueError as exc:
            if isinstance(exc, SegAnyError):
                raise
            args.parser.error(str(exc))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    code = embed_units(plan, store, model, quiet=args.quiet, stream=sys.stderr)
    if problems:
        print(f"error: {len(problems)} file(s) or plane(s) were skipped (see above); the "
              "rest is in the store.", file=sys.stderr)
        return 2
    return code


def check_before_loading(args) -> None:
    """Argument errors that need no model: a missing --checkpoint, an unusable store folder."""
    from ..engine.embeddings import default_store_dir
    from ..engine.images.io import unwritable_reason

    missing = missing_files({"--checkpoint": args.checkpoint})
    if missing:
        args.parser.error(" ".join(missing))
    folder = Path(args.out or default_store_dir()).expanduser()
    reason = unwritable_reason(folder / "zarr.json")  # a file the store writes at its root
    if reason:
        option = "--out" if args.out else "the store folder"
        args.parser.error(f"{option} {folder}: {reason}; give a folder for the store.")


@dataclass
class Unit:
    """One plane to embed, whole or tile by tile: ``todo`` lists the (key, read_rgb) pairs not
    in the store yet (one for a whole plane, one per tile); ``read_rgb()`` gives the uint8
    RGB the encoder takes, read only when its turn comes."""

    path: Path
    index: tuple
    contrast: tuple
    skipped: int = 0
    todo: list = field(default_factory=list)


def plan_units(path: Path, model, store, args, tiling, problems: list | None = None) -> list[Unit]:
    """Read a file and list, per plane, what is not in the store yet (hashing each plane).

    Stored entries are read back and checked (``store.get``): a corrupt one is recomputed.
    Planes no model can take (NaN or infinite values, smaller than 2 x 2) are reported in
    ``problems`` and skipped, as the widget would refuse them too.  Large planes are tiled
    as ``tiling`` (the engine's TilingSettings) says, as in the widgets."""
    from ..engine.images import plane_layout, read_image
    from ..engine.images.contrast import napari_contrast_limits
    from ..engine.images.io import plane_problem
    from ..engine.tiling import embedding_items

    image = read_image(path)
    layout = plane_layout(image.shape)
    contrast = tuple(args.contrast) if args.contrast else napari_contrast_limits(image, layout.rgb)
    units = []
    for index in layout.indices():
        plane = image[index]
        problem = plane_problem(plane)
        if problem:
            where = f" plane {list(index)}" if index else ""
            (problems if problems is not None else []).append(f"{path.name}{where}: {problem} Skipped.")
            continue
        unit = Unit(path, index, contrast)
        items = embedding_items(model, plane, contrast, tiling)
        unit.todo = [(key, read) for key, read in items if store.get(key) is None]
        unit.skipped = len(items) - len(unit.todo)
        units.append(unit)
    return units


def embed_units(units: list[Unit], store, model, quiet: bool = False, stream=None) -> int:
    """Embed what the plan lists, with one progress bar; every finished entry is stored."""
    from tqdm import tqdm

    total = sum(len(u.todo) for u in units)
    skipped = sum(u.skipped for u in units)
    if skipped:
        print(f"{skipped} embedding(s) already in the store: skipped.", file=stream)
    bar = tqdm(total=total, file=stream, disable=quiet, unit="emb",
               bar_format="{desc} {percentage:3.0f}%|{bar}| {n:.0f}/{total} {elapsed}<{remaining}")
    writes_before = store.writes
    try:
        for unit in units:
            bar.set_description(f"{unit.path.name}{list(unit.index) if unit.index else ''}")
            for key, read_rgb in unit.todo:
                start = bar.n
                _embed_one(key, read_rgb(), model, store, _bar_stepper(bar, start))
                bar.update(start + 1 - bar.n)
    finally:
        bar.close()
    print(f"{total} embedding(s) computed, {skipped} reused, in {store.root}; normalisation: "
          f"contrast limits {_limits_text(units)}.", file=stream)
    unwritten = total - (store.writes - writes_before)
    if unwritten:  # the store warned about each; a run that stored nothing must not look fine
        print(f"error: {unwritten} of them could not be written to {store.root} (see the "
              "warnings above).", file=stream)
        return 2
    return 0


def _embed_one(key, rgb, model, store, step) -> None:
    from ..engine.embeddings import iter_encode
    from ..engine.interactive import Predictor
    from ..engine.progress import run

    store.put(key, run(iter_encode(Predictor(model), rgb), lambda r: step(r.fraction)))


def _bar_stepper(bar, start):
    def step(done: float) -> None:
        bar.update(max(0.0, start + done - bar.n))
    return step


def _limits_text(units: list[Unit]) -> str:
    if not units:
        return "(none: nothing to embed)"
    limits = sorted({tuple(u.contrast) for u in units})
    return ", ".join(f"({lo:g}, {hi:g})" for lo, hi in limits) + \
        " (give a napari layer these contrast limits to reuse the store)"

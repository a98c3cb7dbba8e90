"""The options of everything mode on the command line, shared by ``napari-segany everything``
and ``napari-segany batch``: one parser builder, one reading of the parsed arguments.

:func:`add_everything_options` adds them to a parser; :meth:`EverythingOptions.from_args`
checks them (unknown method parameters, a model that cannot run the method, a detector
without object_aware, tile and halo that leave no core, missing files) before any model
loads, with ValueError naming the option.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from .loading import (
    add_precision_option, add_tiling_options, chosen_precision, missing_files, tiling_settings,
)

FILTER_HELP = "post-filter (omitted = off); see docs/everything.md"
# Literal copies, so that building the parser imports no torch (a test checks them against
# engine.everything.METHODS and presets.FilterSettings).
METHODS = ("grid", "object_aware", "fastsam")
MIN_AREA, MAX_AREA_FRACTION = 50, 0.5
NAMED_PARAMS = ("points_per_side", "pred_iou_thresh", "stability_score_thresh", "conf", "max_det")


def add_everything_options(p, exists_help: tuple[str, str] | None = None) -> None:
    """Method, models, method parameters, filters, tiling, contrast, existing outputs, quiet.

    ``exists_help``: the help of ``--overwrite`` and ``--skip-existing`` (default: the
    everything command's)."""
    _add_models(p)
    _add_method_params(p)
    _add_filters(p)
    add_tiling_options(p, "large images (as the widgets: large planes are tiled)",
                       whole="run every plane whole (downscaled to the model input)")
    p.add_argument("--contrast", nargs=2, type=float, metavar=("LO", "HI"),
                   help="intensity mapped to black/white (default: uint8 as is, else the 0.5/99.5 "
                   "percentiles of each file, shared by all its planes)")
    overwrite, skip = exists_help or ("replace existing outputs", "leave existing outputs (resume)")
    exists = p.add_mutually_exclusive_group()
    exists.add_argument("--overwrite", action="store_true", help=overwrite)
    exists.add_argument("--skip-existing", action="store_true", help=skip)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _add_models(p) -> None:
    p.add_argument("--method", choices=METHODS, default="grid", help="default: %(default)s")
    p.add_argument("--model", help="registry model (default: mobile_sam, or fastsam_s for fastsam)")
    p.add_argument("--checkpoint", type=Path, help="weights file of --model (default: cache/download)")
    p.add_argument("--detector", type=Path, help="object_aware: ObjectAwareModel.pt (default: cache)")
    p.add_argument("--device", help="cpu, cuda or mps (default: the fastest available)")
    add_precision_option(p)


def _add_method_params(p) -> None:
    m = p.add_argument_group("method parameters (official defaults)")
    m.add_argument("--points-per-side", type=int, help="grid: points per image side (32)")
    m.add_argument("--pred-iou-thresh", type=float, help="grid: min predicted IoU (0.88)")
    m.add_argument("--stability-thresh", type=float, dest="stability_score_thresh",
                   help="grid: min stability score (0.95)")
    m.add_argument("--conf", type=float, help="object_aware, fastsam: min detection score (0.4)")
    m.add_argument("--max-det", type=int, help="object_aware, fastsam: max objects per image (300)")
    m.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="any other method parameter, e.g. -p crop_n_layers=1 -p box_nms_thresh=0.7")


def _add_filters(p) -> None:
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


@dataclass
class EverythingOptions:
    """The checked everything-mode options of a command (engine types: FilterSettings,
    TilingSettings)."""

    method: str
    model: str
    checkpoint: Path | None
    detector: Path | None
    device: str | None
    params: dict
    filters: object  # FilterSettings
    contrast: tuple[float, float] | None
    tiling: object  # TilingSettings
    precision: str = "fp32"  # "auto", "fp32" or "bf16" (load_model's)

    @classmethod
    def from_args(cls, args) -> "EverythingOptions":
        from ..engine.everything.methods import DEFAULT_MODEL, check_model_name, check_params
        from ..engine.everything.presets import NO_FILTERS, FilterSettings

        params = method_params(args)
        check_params(args.method, params)
        if args.method != "object_aware" and args.detector is not None:
            raise ValueError("--detector is for --method object_aware only.")
        filters = NO_FILTERS if args.no_filters else FilterSettings(
            min_area=args.min_area, max_area_fraction=_fraction_or_off(args.max_area_fraction),
            min_score=args.min_score, min_stability=args.min_stability,
            max_contained=args.max_contained)
        model = args.model or DEFAULT_MODEL[args.method]
        check_model_name(args.method, model)
        tiling = tiling_settings(args, model)
        missing = missing_files({"--checkpoint": args.checkpoint, "--detector": args.detector})
        if missing:
            raise ValueError(" ".join(missing))
        return cls(args.method, model, args.checkpoint, args.detector, args.device, params,
                   filters, tuple(args.contrast) if args.contrast else None, tiling,
                   chosen_precision(args))


def _fraction_or_off(value: float | None) -> float | None:
    if value is None or value >= 1:
        return None
    if value <= 0:
        raise ValueError(f"--max-area-fraction must lie in (0, 1], got {value}.")
    return value


def method_params(args) -> dict:
    """The method parameters given on the command line (named options and ``-p NAME=VALUE``)."""
    params = {}
    for name in NAMED_PARAMS:
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    for item in args.param:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"-p expects NAME=VALUE, got {item!r}.")
        params[name.strip()] = _literal(text.strip())
    return params


def _literal(text: str):
    """Numbers, True/False/None as Python literals; anything else stays a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text

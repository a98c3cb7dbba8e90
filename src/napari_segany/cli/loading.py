"""Loading weights for a command, with errors in command-line words.

The engine's messages speak Python ("pass checkpoint='/path/to/mobile_sam.pt'"); here they
name the option that gives the file (``--checkpoint``, or ``--detector`` for MobileSAMv2's
detector), and a bad file is attributed to the option it came from.
"""
from __future__ import annotations

from pathlib import Path

# A literal copy (building the parser imports no torch); a test checks it against
# engine.precision.REQUESTS.
PRECISIONS = ("auto", "fp32", "bf16")
PRECISION_HELP = ("the image encoder's precision: fp32 (exact), bf16 (bfloat16: much faster "
                  "on CPUs with AMX-BF16, slower on CPUs without native bf16), or auto: "
                  "bf16 where the hardware runs it fast (AMX-BF16 CPUs, bf16 CUDA GPUs), else "
                  "fp32 (`napari-segany models` says which here). Decoders always run in fp32. "
                  "Default: $NAPARI_SEGANY_PRECISION, else auto")


def add_precision_option(parser) -> None:
    """``--precision {auto,fp32,bf16}``; read it with :func:`chosen_precision`."""
    parser.add_argument("--precision", choices=PRECISIONS, help=PRECISION_HELP)


def chosen_precision(args) -> str:
    """``--precision``, else ``$NAPARI_SEGANY_PRECISION``, else "auto" (ValueError naming the
    variable for a value it cannot take)."""
    from ..engine.precision import default_precision

    return args.precision or default_precision()


def option_for(name: str) -> str:
    """The option that gives the weights file of registry model ``name``."""
    from ..models.registry import DETECTOR, get_spec

    return "--detector" if get_spec(name).task == DETECTOR else "--checkpoint"


def missing_files(paths: dict[str, Path | None]) -> list[str]:
    """``{option: path}`` -> messages for the given paths that are not files (checked before
    anything loads, so that a typo costs no model load)."""
    return [f"{option} {path}: no such file." for option, path in paths.items()
            if path is not None and not Path(path).expanduser().is_file()]


def load_for_command(name: str, checkpoint: Path | None, device: str | None,
                     precision: str = "fp32"):
    """``load_model`` with command-line wording in its errors."""
    from ..engine.errors import CheckpointError, WeightsNotFoundError
    from ..engine.weights import load_model, reword_remedy

    option = option_for(name)
    try:
        return load_model(name, checkpoint=checkpoint, device=device, precision=precision)
    except WeightsNotFoundError as exc:
        file_name = getattr(exc, "file_name", "") or "FILE"
        raise reword_remedy(exc, f"pass {option} /path/to/{file_name}") from None
    except CheckpointError as exc:
        if checkpoint is None:
            raise
        raise CheckpointError(f"{option}: {exc}") from None  # the message names the file


def given_file_error(option: str, path: Path | None, exc: Exception) -> Exception:
    """A role check's error (e.g. "not a FastSAM network") attributed to the option that gave
    the file, when one did."""
    from ..engine.errors import CheckpointError

    return CheckpointError(f"{option}: {exc}") if path is not None else exc


def load_checked_models(options):
    """(model, detector or None) of everything-mode ``options`` (method, model, checkpoint,
    detector, device, precision), checked for the method: a file of another kind stops here,
    attributed to the option that gave it."""
    from ..engine.errors import CheckpointError
    from ..engine.everything.methods import DETECTOR_NAME, check_detector, check_network

    model = load_for_command(options.model, options.checkpoint, options.device, options.precision)
    try:
        check_network(options.method, model)
    except CheckpointError as exc:
        raise given_file_error("--checkpoint", options.checkpoint, exc) from None
    if options.method != "object_aware":
        return model, None
    detector = load_for_command(DETECTOR_NAME, options.detector, options.device, options.precision)
    try:
        check_detector(detector)
    except CheckpointError as exc:
        raise given_file_error("--detector", options.detector, exc) from None
    return model, detector


def add_tiling_options(parser, title: str, whole: str) -> None:
    """``--tile``, ``--halo``, ``--tile-threshold``, ``--no-tile`` (alias ``--no-tiling``), with
    the defaults every entry point shares (``engine.tiling.TilingSettings``, see
    :func:`tiling_settings`)."""
    group = parser.add_argument_group(title)
    group.add_argument("--tile", type=int, help="tile side in pixels (default: the model input, 1024)")
    group.add_argument("--halo", type=int, help="context around each tile core (default: tile / 8, 128)")
    group.add_argument("--tile-threshold", type=int, help="tile planes whose longest side exceeds "
                       "this (default: 2 x the model input, at least 2048)")
    group.add_argument("--no-tile", "--no-tiling", dest="no_tile", action="store_true", help=whole)


def tiling_settings(args, model: str):
    """The tiling options as the engine's TilingSettings (the one tiling rule); ValueError,
    naming the options, for negative values and for a tile and halo that leave no core."""
    from ..engine.tiling import TilingSettings
    from ..models.registry import get_spec

    for name in ("tile", "halo", "tile_threshold"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {value}.")
    tiling = TilingSettings(args.tile, args.halo, args.tile_threshold, not args.no_tile)
    try:
        tiling.check(get_spec(model).encoder_size)
    except ValueError as exc:
        raise ValueError(f"--tile/--halo: {exc}") from None
    return tiling

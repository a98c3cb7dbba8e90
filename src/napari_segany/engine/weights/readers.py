"""Safe readers for the official checkpoint files, chosen by ``ModelSpec.checkpoint_format``
(:data:`FORMATS`: one entry per file layout).

Nothing here executes pickled code: plain state dicts go through
``torch.load(..., weights_only=True)`` (plus a small explicit allowlist of numpy number
types, see :mod:`.safe_load`); ultralytics pickles through the restricted
unpickler of :mod:`.ultralytics_reader`.  Every reader returns ``(state_dict, config)`` where
``config`` holds builder keyword arguments recovered from the file (empty for SAM).

When a file is refused or does not fit the chosen model, the error says what the file is
(:func:`describe_checkpoint`, :mod:`.identify`: which registered model's weights
it holds; :mod:`.refusals`: what kind of pickle it is) and which model to choose
instead.  The helpers of those modules stay importable from here.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ...models.registry import ModelSpec
from ..errors import CheckpointError
from .file_inspection import unsafe_globals
from .identify import (
    describe_checkpoint, guess_model, is_yolo_state_dict, matching_models, models_with_signature,
)
from .refusals import BENIGN_GLOBALS, refusal_message
from .safe_load import safe_torch_load

__all__ = [
    "BENIGN_GLOBALS", "FORMATS", "READERS", "CheckpointFormat", "Reader", "describe_checkpoint",
    "guess_model", "matching_models", "read_checkpoint", "read_efficient_sam", "read_state_dict",
    "read_ultralytics", "refusal_message", "safe_torch_load", "unsafe_globals",
]

Reader = Callable[[Path], tuple[dict, dict]]
logger = logging.getLogger("napari_segany")


# ----------------------------------------------------------------------------- readers


def read_state_dict(path: Path) -> tuple[dict, dict]:
    """A plain ``{key: tensor}`` file (SAM, MobileSAM, micro-sam); wrappers are undone by the
    key mapper."""
    obj = safe_torch_load(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors.")
    if isinstance(obj.get("decoder_state"), Mapping):
        logger.info("%s: its 'decoder_state' (micro-sam's instance-segmentation decoder) is not "
                    "used; only the SAM weights are loaded", path)
    return obj, {}


def read_efficient_sam(path: Path) -> tuple[dict, dict]:
    """EfficientSAM: ``{'model': state_dict}``, possibly inside an outer zip (the ViT-S release)."""
    from ...models.efficient_sam.keys import unwrap_efficient_sam
    from .efficient_sam_file import load_efficient_sam_object

    try:
        obj = load_efficient_sam_object(path)
    except CheckpointError:
        raise
    except ValueError as err:  # an outer zip without exactly one .pt
        raise CheckpointError(str(err)) from None
    try:
        return unwrap_efficient_sam(obj), {}
    except ValueError as err:
        found = describe_checkpoint(obj)
        if found:
            raise CheckpointError(f"{path} is not an EfficientSAM checkpoint. {found}") from None
        raise CheckpointError(f"{path}: {err}") from None


def read_ultralytics(path: Path) -> tuple[dict, dict]:
    """FastSAM / MobileSAMv2 object-aware model: ultralytics pickle, read with an allowlist.

    A file that names no ultralytics class is not such a pickle: it is read as a state dict
    (weights only) and accepted when it is a YOLOv8 state dict in the official key layout;
    otherwise the error says what it is.
    """
    from .ultralytics_reader import config_from_state_dict, read_ultralytics_checkpoint

    if _names_ultralytics(path):
        return read_ultralytics_checkpoint(path)
    obj = safe_torch_load(path)
    if isinstance(obj, Mapping) and is_yolo_state_dict(obj):
        return dict(obj), config_from_state_dict(dict(obj))
    found = describe_checkpoint(obj)
    raise CheckpointError(
        f"{path} is not an ultralytics checkpoint (FastSAM or the MobileSAMv2 detector). "
        + (found or f"It holds {_layout(obj)}. Use the official file.")
    )


def _names_ultralytics(path: Path) -> bool:
    """True when the file's pickle references ultralytics classes (read statically).  Files
    that are not torch zip archives (legacy, damaged) go to the weights-only loader, which
    explains them."""
    return any(n.startswith("ultralytics.") for n in unsafe_globals(path))


def _layout(obj) -> str:
    """What a file that matches no model holds: its first dict keys, or its type."""
    if isinstance(obj, Mapping):
        keys = list(obj)
        shown = ", ".join(repr(k) for k in keys[:5]) + (", ..." if len(keys) > 5 else "")
        return f"a dict with the entries [{shown}]"
    return f"a {type(obj).__name__}"


def _unwrap_efficient_sam(obj) -> dict:
    from ...models.efficient_sam.keys import unwrap_efficient_sam

    return unwrap_efficient_sam(obj)


def _yolo_config(state_dict: dict) -> dict:
    """YOLOv8 widths/depths live in the file's pickle; a bare state dict implies them."""
    from .ultralytics_reader import config_from_state_dict

    return config_from_state_dict(state_dict)


@dataclass(frozen=True)
class CheckpointFormat:
    """How the official files of one ``ModelSpec.checkpoint_format`` are read.

    ``read(path) -> (state_dict, config)``; ``unwrap(obj)``: what such a file holds -> the
    state dict in the official key layout (to tell which model weights belong to);
    ``config_of(state_dict)``: the builder settings a bare state dict given in memory
    implies (raises CheckpointError when it is not of this format); ``kind``: what messages
    call such a state dict.  A new file layout is one entry of :data:`FORMATS`; the engine
    asks nothing else about formats.
    """

    read: Reader
    kind: str = "state dict"
    unwrap: Callable[[Mapping], dict] = dict
    config_of: Callable[[dict], dict] = lambda state_dict: {}


FORMATS: dict[str, CheckpointFormat] = {
    "state_dict": CheckpointFormat(read_state_dict),
    "efficient_sam": CheckpointFormat(read_efficient_sam, "EfficientSAM",
                                      unwrap=_unwrap_efficient_sam),
    "ultralytics": CheckpointFormat(read_ultralytics, "YOLOv8", config_of=_yolo_config),
}
READERS: dict[str, Reader] = {name: fmt.read for name, fmt in FORMATS.items()}


def read_checkpoint(spec: ModelSpec, path: Path) -> tuple[dict, dict]:
    """Read ``path`` the way ``spec`` says its official file is laid out."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist or is not a file.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"Checkpoint {path} is empty: delete it and download it again.")
    state_dict, config = FORMATS[spec.checkpoint_format].read(path)
    if spec.file_signature and config:
        _warn_if_not_official(spec, path, config)
    return state_dict, config


def _warn_if_not_official(spec: ModelSpec, path: Path, config: dict) -> None:
    """Log when a file's own description differs from the official file of ``spec`` (e.g.
    FastSAM-s given to fastsam_x): the network is built as the file describes it."""
    differ = {k: config.get(k) for k, v in spec.file_signature.items() if config.get(k) != v}
    if not differ:
        return
    others = models_with_signature(config)
    logger.warning("%s is not the official %s file (%s); the network is built as the file "
                   "describes it%s", path, spec.name,
                   ", ".join(f"{k}={v!r}" for k, v in differ.items()),
                   f" (it looks like {others[0]})" if others else "")

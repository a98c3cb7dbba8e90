"""Safe readers for the official checkpoint files, chosen by ``ModelSpec.checkpoint_format``.

Nothing here executes pickled code: plain state dicts go through
``torch.load(..., weights_only=True)``; ultralytics pickles through the restricted
unpickler of :mod:`.ultralytics_reader`.  Every reader returns ``(state_dict, config)``
where ``config`` holds builder keyword arguments recovered from the file (empty for SAM).
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Callable

import torch

from ..models.registry import ModelSpec
from .errors import CheckpointError

Reader = Callable[[Path], tuple[dict, dict]]


def safe_torch_load(path: Path) -> Any:
    """``torch.load`` restricted to tensors and plain containers, with errors that say what to do."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"Refused to load {path}: it contains pickled objects other than tensors and plain "
            f"containers, which could run code. Nothing was executed. ({_first_line(exc)}) Use "
            "the official checkpoint file for this model."
        ) from None
    except Exception as exc:  # torch raises RuntimeError, KeyError, EOFError... on bad bytes
        raise CheckpointError(
            f"Could not read {path}: the file is truncated or corrupt ({_first_line(exc)}). "
            "Delete it and download it again."
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def read_state_dict(path: Path) -> tuple[dict, dict]:
    """A plain ``{key: tensor}`` file (SAM, MobileSAM); wrappers are undone by the key mapper."""
    obj = safe_torch_load(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors.")
    return obj, {}


def read_efficient_sam(path: Path) -> tuple[dict, dict]:
    """EfficientSAM: ``{'model': state_dict}``, possibly inside an outer zip (the ViT-S release)."""
    from .efficient_sam_file import read_efficient_sam_file

    return read_efficient_sam_file(path), {}


def read_ultralytics(path: Path) -> tuple[dict, dict]:
    """FastSAM / MobileSAMv2 object-aware model: ultralytics pickle, read with an allowlist."""
    from .ultralytics_reader import read_ultralytics_checkpoint

    return read_ultralytics_checkpoint(path)


READERS: dict[str, Reader] = {
    "state_dict": read_state_dict,
    "efficient_sam": read_efficient_sam,
    "ultralytics": read_ultralytics,
}


def read_checkpoint(spec: ModelSpec, path: Path) -> tuple[dict, dict]:
    """Read ``path`` the way ``spec`` says its official file is laid out."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist or is not a file.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"Checkpoint {path} is empty: delete it and download it again.")
    return READERS[spec.checkpoint_format](path)


def load_weights(model: torch.nn.Module, spec: ModelSpec, state_dict: dict, source: str) -> None:
    """Strictly load an official-layout state dict; explain mismatches in user terms."""
    try:
        mapped = spec.map_keys(state_dict)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{source} is not a {spec.name} checkpoint: {exc}") from None
    missing, unexpected, wrong_shape = _compare(model.state_dict(), mapped)
    if missing or unexpected or wrong_shape:
        raise CheckpointError(_mismatch_message(spec, source, mapped, missing, unexpected, wrong_shape))
    model.load_state_dict(mapped, strict=True)


def _compare(ours: dict, theirs: dict) -> tuple[list, list, list]:
    missing = [k for k in ours if k not in theirs]
    unexpected = [k for k in theirs if k not in ours]
    wrong = [
        f"{k} {tuple(theirs[k].shape)} != {tuple(v.shape)}"
        for k, v in ours.items()
        if k in theirs and hasattr(theirs[k], "shape") and tuple(theirs[k].shape) != tuple(v.shape)
    ]
    return missing, unexpected, wrong


def _mismatch_message(spec, source, mapped, missing, unexpected, wrong_shape) -> str:
    parts = [f"{source} does not hold {spec.name} weights:"]
    if missing:
        parts.append(f"{len(missing)} keys missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
    if wrong_shape:
        parts.append(f"{len(wrong_shape)} tensors of the wrong shape (e.g. {wrong_shape[0]})")
    guess = guess_model(mapped, exclude=spec.name)
    hint = f" It looks like {guess} weights: choose that model." if guess else (
        f" Use the official file {spec.file_name}.")
    return " ".join(parts) + "." + hint


def guess_model(state_dict: dict, exclude: str = "") -> str | None:
    """Name of the registered model whose keys and shapes match ``state_dict`` (meta-device build)."""
    from ..models.registry import REGISTRY, PROMPTABLE

    for name, spec in REGISTRY.items():
        if name == exclude or spec.task != PROMPTABLE:
            continue
        try:
            with torch.device("meta"):
                ours = spec.build().state_dict()
            mapped = spec.map_keys(state_dict)
        except Exception:  # a half-written sibling family must not hide the real error
            continue
        if not any(_compare(ours, mapped)):
            return name
    return None

"""Safe reader for the official EfficientSAM weight files.

Two layouts are released:

* ``efficient_sam_vitt.pt`` -- ``torch.save({'model': state_dict})`` (a torch zip archive);
* ``efficient_sam_vits.pt.zip`` -- an ordinary zip archive *holding* ``efficient_sam_vits.pt``.

Both are read without unpickling arbitrary objects (``weights_only=True``) and without
extracting anything to disk.  ``.readers`` wraps this as its ``efficient_sam``
reader.
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import torch

from napari_segany.models.efficient_sam.keys import unwrap_efficient_sam

from .file_inspection import plain_zip_members
from .refusals import EFFICIENT_SAM_RELEASES
from .safe_load import safe_torch_load

_WEIGHT_SUFFIXES = (".pt", ".pth")


def read_efficient_sam_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read an EfficientSAM checkpoint (plain ``.pt`` or the released ``.pt.zip``).

    Returns the model state dict (official key names, CPU tensors).  Raises
    FileNotFoundError for a missing file and ValueError (a ``CheckpointError``) with a hint
    for a truncated, corrupt, unsafe or non-EfficientSAM file.
    """
    obj = load_efficient_sam_object(path)
    try:
        return unwrap_efficient_sam(obj)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def load_efficient_sam_object(path: str | os.PathLike) -> object:
    """What the file holds (normally ``{'model': state_dict}``), loaded weights-only from the
    ``.pt`` itself or from the one ``.pt`` inside the released outer zip."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"EfficientSAM checkpoint not found: {path}")
    member = _outer_zip_member(path)
    if member is None:
        return _torch_load(path, path)
    with zipfile.ZipFile(path) as archive:
        data = archive.read(member)  # whole member in memory: ~40-100 MB
    return _torch_load(io.BytesIO(data), f"{path}::{member}")


def _outer_zip_member(path: Path) -> str | None:
    """Name of the ``.pt`` inside an outer (non-torch) zip, or None for anything else.

    A torch checkpoint is itself a zip whose entries include ``<folder>/data.pkl``; that
    case (like a legacy or damaged file) returns None and torch.load reads it directly.
    """
    names = plain_zip_members(path)
    if names is None:
        return None
    candidates = [
        n for n in names
        if n.endswith(_WEIGHT_SUFFIXES) and not n.startswith("__MACOSX/")
        and not Path(n).name.startswith("._")
    ]
    known = [n for n in candidates if Path(n).name in EFFICIENT_SAM_RELEASES]
    if len(known) == 1:
        return known[0]
    if len(candidates) == 1:
        return candidates[0]
    raise ValueError(
        f"{path} is a zip archive but not a PyTorch checkpoint, and it does not hold exactly "
        f"one .pt file (found {candidates or names[:10]}). Extract the EfficientSAM .pt and "
        "pass that file instead."
    )


def _torch_load(source, name) -> object:
    """Weights-only torch.load (the engine's safe loader): refusals name what the file holds,
    damaged files say so; both raise CheckpointError (a ValueError)."""
    return safe_torch_load(source, name)

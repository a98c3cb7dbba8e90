"""Official SAM / MobileSAM checkpoint keys -> our module keys (a pure function).

Our modules keep the official attribute names, so the mapping is the identity after
unwrapping.  Only the keys in ``UNUSED_KEYS`` are dropped.  (MobileSAM's unused TinyViT
classifier head, ``image_encoder.norm_head/head``, is kept: ``models/tiny_vit/encoder.py`` builds
it so the official file loads strictly.)

Layouts accepted (each strictly: after unwrapping, every entry must be a tensor):

* the plain official state dict (SAM, MobileSAM, micro-sam's exported fine-tunes);
* a training checkpoint holding it under ``model``, ``state_dict`` or ``model_state``
  (torch_em / micro-sam); its other entries (``optimizer_state``, ``epoch``, micro-sam's
  instance-segmentation ``decoder_state``...) are not SAM weights and are ignored;
* keys prefixed by a wrapper: ``module.`` (DataParallel/DDP), ``_orig_mod.``
  (torch.compile), ``sam.`` (a parent module named ``sam``: micro-sam's ``TrainableSAM``).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

#: Entries of a training checkpoint that may hold the state dict.
WRAPPER_KEYS = ("model", "state_dict", "model_state")
#: Prefixes added by wrappers: DataParallel/DDP, torch.compile, a parent module named ``sam``.
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "sam.")
#: Dropped on purpose.  ``pixel_mean``/``pixel_std``: re-saved models sometimes carry the
#: normalisation buffers; the engine normalises (constants in the registry).
UNUSED_KEYS = frozenset({"pixel_mean", "pixel_std"})


def _looks_like_weights(obj: Mapping) -> bool:
    return any(str(k).startswith("image_encoder.") for k in obj) or (
        len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values()))


def _unwrap(obj: Mapping) -> Mapping:
    """Descend into ``{'model' | 'state_dict' | 'model_state': sd}`` (other entries of such
    a training checkpoint, e.g. optimizer state or epoch, are not weights)."""
    while isinstance(obj, Mapping) and not _looks_like_weights(obj):
        inner = [k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)]
        if len(inner) > 1:
            raise ValueError(
                f"the checkpoint holds several state dicts ({', '.join(map(repr, inner))}) and "
                "it is not clear which one is the model: save the SAM weights alone "
                "(torch.save(sam.state_dict(), path))"
            )
        if not inner:
            return obj
        obj = obj[inner[0]]
    return obj


def _strip_prefixes(sd: dict) -> dict:
    """Remove a wrapper prefix shared by *every* key (repeatedly: 'module.sam.x')."""
    changed = True
    while sd and changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(isinstance(k, str) and k.startswith(prefix) for k in sd):
                sd = {k[len(prefix):]: v for k, v in sd.items()}
                changed = True
    return sd


def _preview(keys, n: int = 5) -> str:
    keys = list(keys)
    shown = ", ".join(repr(k) for k in keys[:n])
    return f"[{shown}{', ...' if len(keys) > n else ''}]"


def map_sam_keys(state_dict: Mapping) -> dict:
    """Official SAM (ViT-B/L/H), MobileSAM or micro-sam state dict -> state dict for our ``Sam``.

    Accepts the plain official files, ``{'model': sd}`` / ``{'state_dict': sd}`` /
    ``{'model_state': sd}`` wrappers and keys prefixed with ``module.``, ``_orig_mod.`` or
    ``sam.`` (see the module docstring).  Drops only ``UNUSED_KEYS``; everything else is
    passed on (unknown keys then fail strict loading loudly).  Raises ValueError when the
    object is not a mapping of names to tensors.  The input is not modified; tensors are
    not copied.
    """
    if not isinstance(state_dict, Mapping):
        raise ValueError(
            f"expected a state dict (a mapping of names to tensors), got {type(state_dict).__name__}"
        )
    sd = _unwrap(state_dict)
    not_tensors = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        k = not_tensors[0]
        raise ValueError(
            f"expected a state dict (a mapping of names to tensors), but its entry {k!r} is a "
            f"{type(sd[k]).__name__} (entries: {_preview(sd)})"
        )
    sd = _strip_prefixes(dict(sd))
    return {k: v for k, v in sd.items() if k not in UNUSED_KEYS}

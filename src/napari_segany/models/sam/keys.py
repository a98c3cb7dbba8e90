"""Official SAM / MobileSAM checkpoint keys -> our module keys (a pure function).

Our modules keep the official attribute names, so the mapping is the identity after
unwrapping.  Only the keys in ``UNUSED_KEYS`` are dropped.  (MobileSAM's unused TinyViT
classifier head, ``image_encoder.norm_head/head``, is kept: ``models/tiny_vit.py`` builds
it so the official file loads strictly.)
"""
from __future__ import annotations

from collections.abc import Mapping

#: Entries of a training checkpoint that may hold the state dict.
WRAPPER_KEYS = ("model", "state_dict")
#: Prefixes added by wrappers: DataParallel/DDP, torch.compile, a parent module named ``sam``.
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "sam.")
#: Dropped on purpose.  ``pixel_mean``/``pixel_std``: re-saved models sometimes carry the
#: normalisation buffers; the engine normalises (constants in the registry).
UNUSED_KEYS = frozenset({"pixel_mean", "pixel_std"})


def _unwrap(obj: Mapping) -> Mapping:
    """Descend into ``{'model': sd}`` / ``{'state_dict': sd}`` (other entries of such a
    training checkpoint, e.g. optimizer state or epoch, are not weights)."""
    while isinstance(obj, Mapping):
        inner = [k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)]
        if len(inner) != 1 or any(str(k).startswith("image_encoder.") for k in obj):
            return obj
        obj = obj[inner[0]]
    return obj


def _strip_prefixes(sd: dict) -> dict:
    """Remove a wrapper prefix shared by *every* key (repeatedly: 'module.sam.x')."""
    changed = True
    while sd and changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix):]: v for k, v in sd.items()}
                changed = True
    return sd


def map_sam_keys(state_dict: Mapping) -> dict:
    """Official SAM (ViT-B/L/H) or MobileSAM state dict -> state dict for our ``Sam``.

    Accepts the plain official files, ``{'model': sd}`` / ``{'state_dict': sd}`` wrappers
    and keys prefixed with ``module.``, ``_orig_mod.`` or ``sam.``.  Drops only
    ``UNUSED_KEYS``; everything else is passed on (unknown keys then fail strict loading
    loudly).  The input is not modified; tensors are not copied.
    """
    sd = _unwrap(state_dict)
    if not isinstance(sd, Mapping):
        raise ValueError(
            f"expected a state dict (a mapping of names to tensors), got {type(sd).__name__}"
        )
    sd = _strip_prefixes(dict(sd))
    return {k: v for k, v in sd.items() if k not in UNUSED_KEYS}

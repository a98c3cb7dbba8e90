"""Checkpoint layout of the official EfficientSAM weights (pure: no file access).

The official files (``efficient_sam_vitt.pt``, and ``efficient_sam_vits.pt`` inside the
released ``.pt.zip``) are ``torch.save({'model': state_dict})``; the official loader reads
only ``['model']``.  Our module names equal the official ones, so no key mapping is needed.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

#: keys that only an EfficientSAM state dict has (Meta SAM / MobileSAM have neither)
_EFFICIENT_SAM_MARKERS = ("prompt_encoder.invalid_points.weight", "image_encoder.pos_embed")
_SAM_MARKER = "prompt_encoder.not_a_point_embed.weight"


def unwrap_efficient_sam(obj: object) -> dict[str, torch.Tensor]:
    """``torch.load(file, weights_only=True)`` result -> the model state dict.

    Accepts the official ``{'model': state_dict}`` (other top-level entries are ignored,
    as by the official loader) and, leniently, a bare EfficientSAM state dict.
    Raises ValueError naming what was found when the layout is not EfficientSAM's.
    """
    if not isinstance(obj, Mapping):
        raise ValueError(
            f"Not an EfficientSAM checkpoint: expected a dict {{'model': state_dict}}, got a "
            f"{type(obj).__name__}. Use the official efficient_sam_vitt.pt / efficient_sam_vits.pt."
        )
    if "model" in obj:
        state_dict = obj["model"]
    elif all(torch.is_tensor(v) for v in obj.values()):
        state_dict = obj  # a bare state dict
    else:
        raise ValueError(
            "Not an EfficientSAM checkpoint: expected a dict with a 'model' entry (the official "
            f"layout), found top-level keys {_preview(list(obj))}."
        )
    if not isinstance(state_dict, Mapping):
        raise ValueError(
            f"Not an EfficientSAM checkpoint: its 'model' entry is a {type(state_dict).__name__}, "
            "not a state dict."
        )
    _check_state_dict(state_dict, top_level=list(obj))
    return dict(state_dict)


def _check_state_dict(state_dict: Mapping, top_level: list) -> None:
    """Raise ValueError unless ``state_dict`` maps str -> Tensor with EfficientSAM's keys."""
    bad = [k for k, v in state_dict.items() if not (isinstance(k, str) and torch.is_tensor(v))]
    if bad:
        raise ValueError(
            f"Not an EfficientSAM checkpoint: entries {bad[:3]} are not named tensors "
            f"(top-level keys: {_preview(top_level)})."
        )
    if _SAM_MARKER in state_dict:
        raise ValueError(
            "This is a Meta SAM / MobileSAM checkpoint, not EfficientSAM: choose a sam_vit_* "
            "or mobile_sam model for it."
        )
    missing = [k for k in _EFFICIENT_SAM_MARKERS if k not in state_dict]
    if missing:
        raise ValueError(
            f"Not an EfficientSAM checkpoint: keys {missing} are missing (top-level keys: "
            f"{_preview(top_level)}; state-dict keys start with {_preview(list(state_dict))})."
        )


def _preview(keys: list, n: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:n])
    return f"[{shown}{', ...' if len(keys) > n else ''}]"

"""Official SAM 2 / 2.1 checkpoint keys -> our ``Sam2`` keys (a pure function).

The official file is ``torch.save({'model': state_dict})``.  After unwrapping, keys are the
official ``SAM2Base`` ones except the two-layer MLPs of the mask decoder's two-way
transformer: SAM 2 names them ``mlp.layers.0/1``, our (SAM's) transformer ``mlp.lin1/2``.
Everything else is identity; unknown keys are passed on and fail strict loading loudly.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from ..sam.keys import map_sam_keys

_TRANSFORMER_MLP = re.compile(r"^(sam_mask_decoder\.transformer\.layers\.\d+\.mlp)\.layers\.([01])\.")
_LINEAR_NAMES = {"0": "lin1", "1": "lin2"}


def _rename(key: str) -> str:
    match = _TRANSFORMER_MLP.match(key)
    if not match:
        return key
    return f"{match.group(1)}.{_LINEAR_NAMES[match.group(2)]}.{key[match.end():]}"


def map_sam2_keys(state_dict: Mapping) -> dict:
    """Official SAM 2 state dict (plain or wrapped as ``{'model': sd}``, as the official
    files are) -> state dict for our ``Sam2``.  Raises ValueError when the object is not a
    mapping of names to tensors.  Tensors are not copied."""
    return {_rename(k): v for k, v in map_sam_keys(state_dict).items()}

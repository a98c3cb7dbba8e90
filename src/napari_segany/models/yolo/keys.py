"""Official ultralytics state-dict keys -> ours (identity: our attribute names are theirs)."""
from __future__ import annotations

import re

_KEY = re.compile(r"^model\.\d+\.")


def map_ultralytics_keys(state_dict: dict) -> dict:
    """Check the layout and return a plain ``{key: tensor}`` copy.

    Accepts the keys of ``SegmentationModel.state_dict()`` (``model.0.conv.weight``...);
    a ``model.`` prefix from wrapping the whole network once more is removed.
    Raises ValueError when the keys are not a YOLOv8 layer list.
    """
    keys = list(state_dict)
    if keys and all(k.startswith("model.model.") for k in keys):
        state_dict = {k[len("model."):]: v for k, v in state_dict.items()}
    bad = [k for k in state_dict if not _KEY.match(k)]
    if bad:
        raise ValueError(f"not a YOLOv8 state dict (unexpected key {bad[0]!r}; expected 'model.<i>.…').")
    return dict(state_dict)

"""Models for the benchmarks: speed and memory do not depend on the weights' values."""
from __future__ import annotations

import torch


def random_mobile_sam():
    """mobile_sam with random weights (seed 0), prepared as ``load_model`` prepares a loaded one."""
    from napari_segany.models.mobile_sam import build_mobile_sam
    from napari_segany.models.registry import get_spec

    torch.manual_seed(0)
    model = build_mobile_sam().float().eval()
    prepare = getattr(model, "prepare_for_inference", None)
    if callable(prepare):
        prepare()
    model.spec, model.checkpoint_path = get_spec("mobile_sam"), "random weights"
    return model

"""A tiny SAM 2 (random weights, 128 x 128 input, 8 x 8 embedding) for fast mechanics tests
of the SAM 2 networks and the video engine.  Its masks are noise-like: no quality checks."""
from __future__ import annotations

import dataclasses

from napari_segany.models import registry

TINY_HIERA = dict(embed_dim=8, num_heads=1, stages=(1, 1, 2, 1), global_att_blocks=(3,),
                  window_pos_embed_bkg_spatial_size=(4, 4), window_spec=(8, 4, 2, 1))
#: The registered Hiera-T spec (preprocessing, logit clamp, everything defaults...) with a
#: tiny network, no file and no URL.
TINY_SAM2 = dataclasses.replace(
    registry.get_spec("sam2.1_hiera_t"), name="tiny_sam2",
    builder="napari_segany.models.sam2.build:build_sam2",
    builder_kwargs=dict(hiera=TINY_HIERA, image_size=128), input_size=128,
    file_name="tiny_sam2.pt", urls=(), sha256=None, license="Apache-2.0 (test weights)",
    checkpoint_format="state_dict", description="Tiny SAM 2 for tests (random weights)",
)


def load_tiny_sam2(seed: int = 0):
    """The tiny SAM 2 through ``load_model`` (an official-layout ``{'model': sd}`` dict)."""
    import torch

    from napari_segany.engine.weights import load_model

    torch.manual_seed(seed)
    state_dict = TINY_SAM2.build().state_dict()
    return load_model(TINY_SAM2, checkpoint={"model": state_dict}, device="cpu")
